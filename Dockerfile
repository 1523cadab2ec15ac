# Build cvm with the same script the README and CI use, then ship it as the
# entrypoint of an outer image. (The musl static build and an example
# workspace image come with the "ship it" work; this is the glibc build.)
FROM debian:12 AS build
COPY . /src
WORKDIR /src
RUN scripts/deps && scripts/build

FROM debian:12-slim
COPY --from=build /src/build/cvm /usr/local/bin/cvm
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/cvm"]
CMD ["run", "--", "/bin/bash"]
