# adaptergate GitHub Action image: the `adaptergate` package with its PEFT and
# bitsandbytes extras, on top of a PyTorch CUDA runtime image, running
# /entrypoint.py (which reads the action's INPUT_* variables and runs the gate).
#
# Build:  docker build -t adaptergate-action .
#         docker build --build-arg BASE_IMAGE=pytorch/pytorch:<tag> ...   (another torch/CUDA)
#
# GPUs. A Docker container action cannot ask for a GPU: the runner starts it
# with its own `docker run` line, which has no `--gpus` option and takes none
# from action.yml. GPUs reach the action only when the self-hosted runner's
# host has the NVIDIA container runtime (nvidia-container-toolkit) configured as
# Docker's *default* runtime (`"default-runtime": "nvidia"` in
# /etc/docker/daemon.json); that runtime reads NVIDIA_VISIBLE_DEVICES and
# NVIDIA_DRIVER_CAPABILITIES, set below, and mounts the driver and devices.
# Elsewhere the action runs on the CPU (device '' picks cuda only when a GPU is
# visible). The alternative, which needs no change to the runner host's
# Docker: run the job in this image as a job container and call the CLI,
#
#     jobs:
#       gate:
#         runs-on: [self-hosted, gpu]
#         container:
#           image: ghcr.io/adaptergate/adaptergate-action:v1
#           options: --gpus all
#         steps:
#           - uses: actions/checkout@v4
#           - run: adaptergate gate --tenant acme --holdout ... --base-model ...
#
# The image runs as root, as GitHub requires of container actions (the
# workspace is mounted root-owned), and sets no WORKDIR: the runner sets the
# working directory to /github/workspace itself.

# The base ships Python and a CUDA build of torch; installing the package must
# not replace that torch (see the constraint below). pytorch/pytorch 2.10 and
# later are Ubuntu 24.04 with the system Python 3.12 (PEP 668 "externally
# managed"); earlier tags are conda. Both work.
ARG BASE_IMAGE=pytorch/pytorch:2.13.0-cuda12.6-cudnn9-runtime
FROM ${BASE_IMAGE}

LABEL org.opencontainers.image.title="adaptergate" \
      org.opencontainers.image.description="GitHub Action: gate per-tenant LoRA adapter promotion on a held-out set, with paired statistics and slice attribution." \
      org.opencontainers.image.source="https://github.com/adaptergate/adaptergate" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    HF_HUB_DISABLE_PROGRESS_BARS=1 \
    TRANSFORMERS_NO_ADVISORY_WARNINGS=1 \
    DO_NOT_TRACK=1

# git: `manifest:` mode reads the manifest at the pull request's base commit
# (`git show`) and takes replaced baseline adapters out of it. The PyTorch
# runtime images do not ship it.
RUN set -eu; \
    if ! command -v git >/dev/null 2>&1; then \
        apt-get update -qq; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git ca-certificates; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    git --version

COPY pyproject.toml README.md LICENSE NOTICE /tmp/adaptergate-src/
COPY adaptergate/ /tmp/adaptergate-src/adaptergate/

# Install the package (not editable) with its extras. The base's torch is pinned
# by a constraint generated from what is installed, so the resolver can never
# swap it for a PyPI build (gigabytes, and maybe the wrong CUDA); the install
# fails instead if an extra needed another torch. PIP_BREAK_SYSTEM_PACKAGES
# lets pip install into the base's own Python where that Python is marked
# externally managed (newer pytorch/pytorch tags); other pips ignore it.
RUN set -eu; \
    python3 -c "from importlib.metadata import version; print('torch==' + version('torch'))" \
        > /tmp/torch-constraint.txt; \
    PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --no-cache-dir --quiet \
        --constraint /tmp/torch-constraint.txt "/tmp/adaptergate-src[peft,quant]"; \
    python3 -c "import adaptergate.cli, peft, transformers"; \
    rm -rf /tmp/adaptergate-src /tmp/torch-constraint.txt /tmp/torchinductor_*

COPY entrypoint.py /entrypoint.py

ENTRYPOINT ["python3", "/entrypoint.py"]
