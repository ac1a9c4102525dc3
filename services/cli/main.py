import typer
app = typer.Typer()
@app.command()
def hello():
    from mlplatform.v1 import frame_pb2
    print("hi", frame_pb2.Frame())
