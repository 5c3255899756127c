# A mix node or gateway. The base image is made by build-images.sh (no
# registry is needed); see docs/operator-guide.md, "Running in containers".
#
#   docker run --rm -v /srv/aegis-node:/var/lib/aegislink aegislink/aegis-node:local \
#       init --data-dir /var/lib/aegislink --role mix --listen /ip4/0.0.0.0/tcp/4100 \
#       --public-address /ip4/PUBLIC-IP/tcp/4100 --authority URL=KEY ...
#   docker run -d --name aegis-node -p 4100:4100 -v /srv/aegis-node:/var/lib/aegislink \
#       aegislink/aegis-node:local
ARG BASE=aegislink/base:local
FROM ${BASE}
ARG VERSION=unknown
LABEL org.opencontainers.image.title="aegis-node" \
      org.opencontainers.image.description="AegisLink mix node and gateway" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY aegis-node /usr/local/bin/aegis-node
USER 10001:10001
WORKDIR /var/lib/aegislink
VOLUME ["/var/lib/aegislink"]
# libp2p, then /metrics and /health.
EXPOSE 4100 9100
ENV RUST_LOG=info NO_COLOR=1
# SIGTERM saves the replay filters and flushes the database.
STOPSIGNAL SIGTERM
# Healthy once the node serves and the consensus lists it.
HEALTHCHECK --interval=15s --timeout=6s --start-period=120s \
    CMD ["/usr/local/bin/aegis-node", "status", "--config", "/var/lib/aegislink/aegis-node.toml"]
ENTRYPOINT ["/usr/local/bin/aegis-node"]
CMD ["run", "--config", "/var/lib/aegislink/aegis-node.toml"]
