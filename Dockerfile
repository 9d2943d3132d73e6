# syntax=docker/dockerfile:1

# Build stage, with cgo on as in every build of the project.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -trimpath -ldflags="-s -w" -o /out/pgmigrate-proxy ./cmd/pgmigrate-proxy

# Runtime stage: glibc (the binary is dynamically linked), CA certificates for
# upstream TLS, and a non-root user.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home pgmigrate
COPY --from=build /out/pgmigrate-proxy /usr/local/bin/pgmigrate-proxy
USER 10001
ENV PGMIGRATE_LISTEN=0.0.0.0:6432 \
    PGMIGRATE_ADMIN_LISTEN=0.0.0.0:9464
EXPOSE 6432 9464
ENTRYPOINT ["/usr/local/bin/pgmigrate-proxy"]
CMD ["--config", "/etc/pgmigrate/pgmigrate.yaml"]
