# nginx in front of the Herald gateways, configured from deploy/nginx.conf
# (the same rules scripts/run uses: WebSocket spread over all gateways,
# Socket.IO polling kept on one). Build context: deploy/.
#   docker build -f deploy/docker/nginx.Dockerfile --build-arg GATEWAYS="gw-a:8080 gw-b:8080" deploy
ARG BASE=debian:bookworm-slim
FROM ${BASE}
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* \
 && rm -f /etc/nginx/sites-enabled/default \
 && sed -i 's/worker_connections [0-9]*;/worker_connections 4096;/' /etc/nginx/nginx.conf \
 && ln -sf /dev/stdout /var/log/nginx/access.log \
 && ln -sf /dev/stderr /var/log/nginx/error.log
COPY docker/gen-nginx-conf docker/herald-healthcheck /usr/local/bin/
COPY nginx.conf /usr/local/share/herald/nginx.conf
# The gateways' addresses as the nginx container sees them (compose service names).
ARG GATEWAYS="gateway-1:8080 gateway-2:8080"
RUN gen-nginx-conf $GATEWAYS </usr/local/share/herald/nginx.conf >/etc/nginx/conf.d/herald.conf
EXPOSE 80
# SIGQUIT: finish the requests in flight, then stop.
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
