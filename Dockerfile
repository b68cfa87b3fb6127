# One image for every process of the product: `payments serve`, `payments migrate`, ...
# A production install: the wheel's files only (migrations included), without the embedded servers' extra.
FROM python:3.11-slim
WORKDIR /src
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY setup.cfg pyproject.toml README.md ./
COPY core core
COPY adapters adapters
COPY app app
COPY workers workers
COPY payments payments
RUN pip install --no-cache-dir . && rm -rf /src && useradd --system payments
WORKDIR /app
USER payments
EXPOSE 8080
CMD ["payments", "serve"]
