# flybot's image: `fly deploy` builds it from this file (see fly.toml and the README's
# "Run flybot on Fly"). Two stages: the builder installs flybot and its dependencies, as
# pyproject.toml pins them, into a virtualenv; the final stage is a fresh slim Python with
# that virtualenv copied in: no pip cache, no build tools, no sources beyond the package.
#
# flybot runs as the unprivileged user `flybot` (uid 10001). There is no `USER` line because
# a Fly volume is mounted over /data owned by root: the entrypoint, started as root, gives
# /data to flybot and then drops to it (setpriv, from util-linux, which slim images have)
# before anything of flybot's runs. Started as any other user, it runs the command as is.

FROM python:3.11.11-slim-bookworm AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/flybot
WORKDIR /src
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY adapters ./adapters
COPY commands ./commands
RUN python -m venv "$VIRTUAL_ENV" \
    && "$VIRTUAL_ENV/bin/pip" install --no-cache-dir . \
    && "$VIRTUAL_ENV/bin/pip" uninstall --yes pip setuptools wheel

FROM python:3.11.11-slim-bookworm
# MALLOC_ARENA_MAX=1: one glibc malloc arena for all of flybot's threads (two event loops,
# the database's worker threads, discord.py's heartbeat) instead of one per thread, each
# keeping its own freed memory: 1.2-2 MB less peak RSS after deploys (README, peak memory).
# The interpreter lock already serialises nearly all of their allocations.
ENV MALLOC_ARENA_MAX=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/flybot \
    PATH=/opt/flybot/bin:$PATH \
    FLYBOT_DATA_DIR=/data
RUN groupadd --system --gid 10001 flybot \
    && useradd --system --uid 10001 --gid flybot --create-home --home-dir /home/flybot flybot \
    && mkdir -p /data \
    && chown flybot:flybot /data
COPY --from=builder /opt/flybot /opt/flybot
COPY deploy/entrypoint.sh /usr/local/bin/flybot-entrypoint
WORKDIR /home/flybot
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/flybot-entrypoint"]
CMD ["flybot", "run"]
