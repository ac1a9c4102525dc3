# One image for every platform process: `mlp trainer`, `mlp inferer`, `mlp predictor`,
# `mlp gateway`, and (with `python -m mlflow server`) the MLflow tracking server.
FROM python:3.11-slim AS runtime

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLP_DATA_DIR=/data

# LightGBM needs the GNU OpenMP runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first (pinned by constraints.txt), so code changes reuse this layer.
COPY constraints.txt pyproject.toml README.md ./
COPY clients/python clients/python
COPY services services
COPY gateway gateway
COPY examples examples
RUN pip install -c constraints.txt ./clients/python ".[deploy,monitor]" \
    && useradd --create-home --uid 10001 mlp \
    && mkdir -p /data && chown mlp /data

USER mlp
EXPOSE 50051 8000 9095 5000
ENTRYPOINT ["mlp"]
CMD ["--help"]
