# Redis for Herald, from the same Debian base (no registry image needed).
# Herald keeps nothing in Redis that it cannot rebuild, so no persistence:
# after a restart everything is re-announced (docs/OPERATIONS.md).
ARG BASE=debian:bookworm-slim
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
USER redis
WORKDIR /var/lib/redis
EXPOSE 6379
# Reachable only on the compose network (the port is not published).
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
