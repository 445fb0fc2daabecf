# syntax=docker/dockerfile:1.4
# bottlecheck: one image for one-shot batch jobs and for serving.
#
#   docker build -t bottlecheck .
#   docker run --rm -v "$PWD:/data" bottlecheck classify /data -o /data/results.csv
#   docker run -p 5000:5000 -e BOTTLECHECK_API_KEYS=secret bottlecheck
#
# Behind a TLS-intercepting proxy, pass its CA bundle as a build secret (never baked into a layer):
#   docker build --secret id=cacert,src=/etc/ssl/certs/ca-certificates.crt -t bottlecheck .

ARG BASE=python:3.11-slim

# ---- builder: turn the source tree (code and model) into one wheel -------------------------
FROM ${BASE} AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bottlecheck ./bottlecheck
COPY model ./model
RUN --mount=type=secret,id=cacert,required=false \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi; \
    python3 -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir --disable-pip-version-check "setuptools>=77" wheel \
    && /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation -w /wheels .

# ---- runtime: the wheel and its light dependencies (LiteRT, no TensorFlow, no compilers) ---
FROM ${BASE} AS runtime
# The package's version (bottlecheck/__init__.py is the one place it is written):
#   --build-arg VERSION=$(sed -n 's/^__version__ = "\(.*\)"/\1/p' bottlecheck/__init__.py)
ARG VERSION=unset
# URL of the repository this image was built from (--build-arg SOURCE=...).
ARG SOURCE=""
# Extras to install with the wheel: "video" (PyAV with its FFmpeg, watchdog) for clips, streams and
# `bottlecheck watch`, tagged apart (bottlecheck:video) so that the default image stays slim.
ARG EXTRAS=""
LABEL org.opencontainers.image.title="bottlecheck" \
      org.opencontainers.image.description="Is this beer bottle open or closed? CLI and HTTP API." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN useradd --system --create-home --home-dir /home/bottlecheck --uid 10001 --shell /usr/sbin/nologin bottlecheck \
    && mkdir -p /data && chown bottlecheck /data
# The wheel is bind-mounted from the builder, so it never becomes a layer of this image.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    --mount=type=secret,id=cacert,required=false \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi; \
    python3 -m venv /opt/bottlecheck \
    && wheel="$(ls /wheels/*.whl)" \
    && /opt/bottlecheck/bin/pip install --no-cache-dir --disable-pip-version-check --no-compile "${wheel}${EXTRAS:+[$EXTRAS]}" \
    && /opt/bottlecheck/bin/pip uninstall -y -q pip setuptools 2>/dev/null; \
    find /opt/bottlecheck -name '__pycache__' -prune -exec rm -rf {} + ; \
    rm -rf /root/.cache
ENV PATH=/opt/bottlecheck/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    BOTTLECHECK_ENGINE=litert
USER bottlecheck
WORKDIR /data
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:5000/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["bottlecheck"]
CMD ["serve", "--host", "0.0.0.0", "--port", "5000"]
