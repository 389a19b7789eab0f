# Sluice container image: `sluice` (the entrypoint), `sluice-backend` (the experiment backend) and
# `sluice-loadgen` (the experiment's load generator), the last two run with an entrypoint override,
# on Debian 12. Build: `docker build -t sluice:dev .`
# (scripts/minikube-up.sh builds it once under the tag of scripts/sluice-image.sh and loads it into
# every node; scripts/image-test.sh builds and runs it with podman).

# --- build: the same dependency script as CI, without the test-only tools -------------------------
FROM debian:bookworm AS build
WORKDIR /src
# The dependency layer first, so that source edits do not reinstall the toolchain.
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN bash scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . .
# A plain Release build, as scripts/test.sh builds it once (with -Werror there, off here), installed
# by the project's install rules (packaging/CMakeLists.txt): component sluice (the daemon, with its
# man page, unit and host config, which the image leaves out) and component tools.
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DSLUICE_TESTS=OFF \
 && cmake --build /build --target sluice sluice-backend sluice-loadgen sluice_install_docs \
 && cmake --install /build --prefix /out --component sluice --strip \
 && cmake --install /build --prefix /out --component tools --strip

# --- runtime: the shared libraries and the three binaries, nothing else -------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libuv1 libc-ares2 libyaml-cpp0.7 libspdlog1.10 libfmt9 \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
# A fixed numeric UID/GID, so that Kubernetes' runAsNonRoot can verify it without /etc/passwd.
RUN groupadd --system --gid 10001 sluice \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin sluice
COPY --from=build /out/bin/ /usr/local/bin/
# The default configuration: the Minikube deployment (deploy/ mounts its ConfigMap over /etc/sluice).
COPY config/minikube.yaml /etc/sluice/sluice.yaml
USER 10001:10001
# 8080: the `web` listener; 9100: admin (/metrics, /healthz); 8000: sluice-backend.
EXPOSE 8080 9100 8000
# Logs go to stdout. SIGTERM drains open sessions for up to drain_timeout, then exits.
ENTRYPOINT ["/usr/local/bin/sluice"]
CMD ["--config", "/etc/sluice/sluice.yaml"]
