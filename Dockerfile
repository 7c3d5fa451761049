# devex for Kubernetes, as a Bitbucket Pipelines step image, and as the base of the devex pipe
# (pipe/Dockerfile): slim, non-root, git included.
#   docker build -t devex:0.1.0 .
# BASE_IMAGE is any Debian bookworm image with python3 (3.11+) and python3-venv; the default is
# the official slim Python image. docs/platform.md tells how the image was built and smoke-tested
# from a debootstrap base where no container registry could be reached.
ARG BASE_IMAGE=python:3.12.8-slim-bookworm

FROM ${BASE_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY templates ./templates
# A virtual environment: Debian's own python3 refuses pip installs outside one (PEP 668).
RUN python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir build==1.2.2 \
    && /opt/build/bin/python -m build --wheel --outdir /wheels

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="devex" \
      org.opencontainers.image.description="DORA metrics, pipeline feedback and deployment gates (distribution devex-delivery)"
# safe.directory: pipelines mount or clone the workspace as another user than 10001, and git
# refuses to read a repository it does not own unless told to trust it.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --create-home --shell /usr/sbin/nologin devex \
    && git config --system --add safe.directory '*'
COPY --from=build /wheels /wheels
RUN python3 -m venv /opt/devex \
    && /opt/devex/bin/pip install --no-cache-dir /wheels/*.whl \
    && rm -rf /wheels
ENV PATH=/opt/devex/bin:$PATH PYTHONUNBUFFERED=1 XDG_CACHE_HOME=/tmp/cache
USER 10001
EXPOSE 9464
ENTRYPOINT ["devex"]
CMD ["--help"]
