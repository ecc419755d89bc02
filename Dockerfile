# The sluice binary on a slim Debian, with bash for `script:` tasks, Python (with venv, for `requirements:`) for
# `kind: python` tasks, and curl for health checks.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --bin sluice

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends bash ca-certificates curl tini python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/sluice /usr/local/bin/sluice
COPY dags /opt/sluice/dags
WORKDIR /opt/sluice
ENV SLUICE_DAGS_FOLDER=/opt/sluice/dags
EXPOSE 8080
ENTRYPOINT ["tini", "--", "sluice"]
CMD ["standalone", "--bind", "0.0.0.0:8080"]
