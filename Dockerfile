# One image for every process of the product: `payments serve`, `payments migrate`, ...
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY setup.cfg pyproject.toml README.md ./
COPY core core
COPY adapters adapters
COPY app app
COPY workers workers
COPY migrations migrations
RUN pip install --no-cache-dir -e . && useradd --system payments
USER payments
EXPOSE 8080
CMD ["payments", "serve"]
