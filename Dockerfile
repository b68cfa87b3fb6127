# One image for every process of the product: `payments serve` by default; compose runs `payments migrate`,
# `payments worker`, `payments mock-providers` and `payments keys create` from the same image.
#
# Stage 1 builds the wheel from the sources; stage 2 is a production install of that wheel alone: no source tree,
# no build tools, neither the `dev` nor the `embedded` extra (the migrations ship inside the wheel), run as a
# non-root user of fixed uid/gid 10001.

FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY core core
COPY adapters adapters
COPY app app
COPY workers workers
COPY payments payments
RUN pip wheel . --no-deps -w /dist

FROM python:3.11-slim AS runtime
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PAYMENTS_SERVER_HOST=0.0.0.0 PAYMENTS_SERVER_PORT=8080
RUN groupadd --system --gid 10001 payments \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin payments
COPY --from=build /dist/ /tmp/dist/
RUN pip install /tmp/dist/payments-*.whl && rm -rf /tmp/dist
WORKDIR /app
USER 10001:10001
EXPOSE 8080
# `payments serve`'s readiness (database, Redis, migrations), without curl: the slim image has Python only.
# Compose gives the worker and the mock providers checks of their own ports.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PAYMENTS_SERVER_PORT', '8080') + '/health/ready', timeout=2)"]
CMD ["payments", "serve"]
