# Solidarity Relay: one image for every role (`relay run`, `relay bot`, `relay worker`).
# SQLite by default, in the /data volume; set RELAY_DATABASE_URL to a PostgreSQL URL to use one.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md LICENSE bot.py ./
COPY feeds ./feeds
COPY storage ./storage
COPY relay ./relay
RUN pip install '.[postgres]'

RUN useradd --system --create-home --uid 10001 --user-group relay \
    && mkdir /data && chown relay:relay /data
ENV RELAY_DATABASE_URL=sqlite:////data/relay.db
VOLUME ["/data"]
WORKDIR /data
USER relay

HEALTHCHECK --interval=5m --timeout=60s --start-period=30s --retries=3 CMD ["relay", "check"]
ENTRYPOINT ["relay"]
CMD ["run"]
