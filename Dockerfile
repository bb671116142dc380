# The image of scaling-optuna's workers, `create` and the dashboard.
#   docker build -t scaling-optuna .
# CPU-only torch by default; for NVIDIA GPUs build with
#   --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu124
# No credentials live in the image: the store URL comes from SCALING_OPTUNA_STORAGE at run time.
FROM python:3.11-slim-bookworm

ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# torch first (the pair scripts/setup.sh pins), from its own index, so that this large layer is cached across code changes.
RUN pip install --index-url "$TORCH_INDEX" "torch==2.14.1" "torchvision==0.29.1"
COPY pyproject.toml README.md ./
COPY scaling_optuna ./scaling_optuna
RUN pip install --extra-index-url "$TORCH_INDEX" .
COPY studies ./studies

RUN useradd --create-home --uid 1000 optuna && mkdir -p /app/data && chown optuna /app/data
USER optuna
VOLUME ["/app/data"]
CMD ["scaling-optuna", "--help"]
