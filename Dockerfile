# One image per role, each a target of this file (multi-stage, non-root, with a HEALTHCHECK):
#
#   docker build --target gateway   -t mlplatform-gateway .    # REST gateway: FastAPI, no ML stack
#   docker build --target predictor -t mlplatform-predictor .  # gRPC predictor
#   docker build --target trainer   -t mlplatform-trainer .    # queue worker: PyCaret + MLflow
#   docker build --target inferer   -t mlplatform-inferer .    # queue worker: batch predictions
#   docker build --target mlflow    -t mlplatform-mlflow .     # MLflow tracking server (compose)
#
# Build stages install into a virtualenv at /opt/venv; a runtime stage copies only that
# virtualenv, so compilers, pip caches and sources stay behind. Every version comes from
# constraints.txt. The gateway installs the platform's code without its dependencies, then
# only deploy/images/gateway-requirements.txt (tests/test_dependencies.py keeps that list
# complete), which is what keeps PyCaret, MLflow and scikit-learn out of it.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    MLP_DATA_DIR=/data
RUN useradd --create-home --uid 10001 mlp && mkdir -p /data && chown mlp /data
WORKDIR /app
COPY deploy/images/healthcheck.py /usr/local/bin/mlp-healthcheck

# -- build stages -------------------------------------------------------------------------
FROM base AS source
RUN python -m venv /opt/venv
COPY constraints.txt pyproject.toml README.md ./
COPY clients/python clients/python
COPY services services
COPY gateway gateway

FROM source AS build-gateway
COPY deploy/images/gateway-requirements.txt deploy/images/gateway-requirements.txt
RUN pip install -c constraints.txt -r deploy/images/gateway-requirements.txt \
    && pip install --no-deps ./clients/python .

FROM source AS build-ml
RUN pip install -c constraints.txt ./clients/python ".[mongo,monitor,compiled,tracing]"

FROM build-ml AS build-trainer
RUN pip install -c constraints.txt ".[mongo,kaggle]"

FROM base AS build-mlflow
RUN python -m venv /opt/venv
COPY constraints.txt ./
RUN pip install -c constraints.txt mlflow psycopg2-binary boto3

# LightGBM (a PyCaret estimator) needs the GNU OpenMP runtime.
FROM base AS ml-runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# -- runtime images -----------------------------------------------------------------------
FROM base AS gateway
COPY --from=build-gateway /opt/venv /opt/venv
USER mlp
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "/usr/local/bin/mlp-healthcheck", "http", "http://127.0.0.1:8000/healthz"]
ENTRYPOINT ["mlp"]
CMD ["gateway"]

FROM ml-runtime AS predictor
COPY --from=build-ml /opt/venv /opt/venv
USER mlp
EXPOSE 50051 9095
# Healthy means serving a model: NOT_SERVING until the model's alias exists.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/bin/mlp-healthcheck", "grpc", "127.0.0.1:50051"]
ENTRYPOINT ["mlp"]
CMD ["predictor"]

FROM ml-runtime AS inferer
COPY --from=build-ml /opt/venv /opt/venv
USER mlp
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/mlp-healthcheck", "broker"]
ENTRYPOINT ["mlp"]
CMD ["inferer"]

FROM ml-runtime AS trainer
COPY --from=build-trainer /opt/venv /opt/venv
# The demo pipelines read ./examples (a default data root).
COPY --chown=mlp examples examples
USER mlp
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/usr/local/bin/mlp-healthcheck", "broker"]
ENTRYPOINT ["mlp"]
CMD ["trainer"]

FROM base AS mlflow
COPY --from=build-mlflow /opt/venv /opt/venv
USER mlp
EXPOSE 5000
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=5 \
    CMD ["python", "/usr/local/bin/mlp-healthcheck", "http", "http://127.0.0.1:5000/health"]
ENTRYPOINT ["mlflow"]
CMD ["server", "--host=0.0.0.0", "--port=5000"]
