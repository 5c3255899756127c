# A directory authority. The base image is made by build-images.sh (no
# registry is needed); see docs/operator-guide.md, "Running in containers".
#
#   docker run --rm -v /srv/aegis-dir:/var/lib/aegislink aegislink/aegis-dir:local \
#       init --data-dir /var/lib/aegislink --name NAME --listen 0.0.0.0:7900 --peer URL=KEY ...
#   docker run -d --name aegis-dir -p 7900:7900 -v /srv/aegis-dir:/var/lib/aegislink \
#       aegislink/aegis-dir:local
ARG BASE=aegislink/base:local
FROM ${BASE}
ARG VERSION=unknown
LABEL org.opencontainers.image.title="aegis-dir" \
      org.opencontainers.image.description="AegisLink directory authority" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY aegis-dir /usr/local/bin/aegis-dir
USER 10001:10001
WORKDIR /var/lib/aegislink
VOLUME ["/var/lib/aegislink"]
# The HTTP API, /metrics and the status page.
EXPOSE 7900
ENV RUST_LOG=info NO_COLOR=1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/aegis-dir"]
CMD ["run", "--config", "/var/lib/aegislink/aegis-dir.toml"]
