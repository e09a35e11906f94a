# Sluice's container image: the static release binary on an empty base.
# Built by `make release-image` from `make release-bin`'s output, so the
# image needs no compiler and pulls no base image:
#   docker build --build-arg BINARY=dist/sluice-linux-amd64 -t sluice .
# Runs as the unprivileged user sluice (65532), keeps its data in the
# volume /var/lib/sluice and listens on every interface.
FROM scratch

ARG BINARY=dist/sluice-linux-amd64
ARG VERSION=dev
LABEL org.opencontainers.image.title="Sluice" \
      org.opencontainers.image.description="A message broker that speaks AMQP 0-9-1" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY packaging/container/rootfs/etc/ /etc/
COPY --chown=65532:65532 packaging/container/rootfs/var/ /var/
COPY ${BINARY} /usr/local/bin/sluice

ENV SLUICE_DATA=/var/lib/sluice \
    SLUICE_AMQP=:5672 \
    SLUICE_HTTP=:15672 \
    SLUICE_LOG_FORMAT=json
USER 65532:65532
WORKDIR /var/lib/sluice
VOLUME ["/var/lib/sluice"]
# AMQP, AMQPS (with --amqps), HTTP API and console, HTTPS (with --https).
EXPOSE 5672 5671 15672 15671

# The health check logs in as SLUICE_USER/SLUICE_PASSWORD (guest/guest by
# default, which may log in from loopback only: this check runs inside
# the container, so it may).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["/usr/local/bin/sluice", "health", "--server", "127.0.0.1:15672"]

STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["serve"]
