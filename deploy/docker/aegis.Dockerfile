# The client, kept online by `aegis daemon`; other commands reach the daemon
# with `docker exec CONTAINER aegis ...`. The base image is made by
# build-images.sh (no registry is needed); see docs/operator-guide.md,
# "Running in containers".
ARG BASE=aegislink/base:local
FROM ${BASE}
ARG VERSION=unknown
LABEL org.opencontainers.image.title="aegis" \
      org.opencontainers.image.description="AegisLink client" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY aegis /usr/local/bin/aegis
USER 10001:10001
WORKDIR /var/lib/aegislink
VOLUME ["/var/lib/aegislink"]
ENV AEGIS_PROFILE=/var/lib/aegislink/profile NO_COLOR=1
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/aegis"]
CMD ["daemon"]
