# The ddb2fs Lambda function's container image: built with CMake on Amazon Linux 2023, run on
# AWS's provided.al2023 base image with the binary and only the shared libraries it links.
#
#   docker build -t ddb2fs \
#       --build-arg BUILD_IMAGE_DIGEST=sha256:… --build-arg RUN_IMAGE_DIGEST=sha256:… \
#       --build-arg SODIUM_SHA256=… .
#
# Every input is pinned: the two base images by digest, the two source tarballs by SHA-256.
# The build stops when a pin is missing or does not match. The digests are those of the images
# you have reviewed; read them with
#   docker buildx imagetools inspect public.ecr.aws/amazonlinux/amazonlinux:2023
#   docker buildx imagetools inspect public.ecr.aws/lambda/provided:al2023
# SODIUM_SHA256 is the SHA-256 of libsodium-${SODIUM_VERSION}.tar.gz, once its minisign
# signature (the .minisig next to it) has been checked against the public key libsodium's
# documentation publishes (Installation > Integrity checking):
#   minisign -Vm libsodium-1.0.20.tar.gz -P <libsodium's public key>
#   sha256sum libsodium-1.0.20.tar.gz
# tools/deploy/deploy passes the three from its environment (same names).
#
# Libraries the binary links directly (checked against the binary CI builds, with ldd, by
# tests/integration/test_image.py):
ARG DIRECT_LIBS="libcjson libsodium libsqlite3 libcurl libcrypto"
ARG BUILD_IMAGE_DIGEST
ARG RUN_IMAGE_DIGEST

FROM public.ecr.aws/amazonlinux/amazonlinux:2023@${BUILD_IMAGE_DIGEST} AS build
RUN dnf install -y gcc make cmake pkgconf-pkg-config tar gzip findutils \
        libcurl-devel openssl-devel sqlite-devel && \
    dnf clean all
# cJSON and libsodium are not in Amazon Linux 2023's repositories: built from their sources.
# cJSON: the v1.7.18 tag's source as Debian's archive keeps it (cjson_1.7.18.orig.tar.gz).
ARG CJSON_VERSION=1.7.18
ARG SODIUM_VERSION=1.0.20
ARG SODIUM_SHA256
ADD --checksum=sha256:3aa806844a03442c00769b83e99970be70fbef03735ff898f4811dd03b9f5ee5 https://deb.debian.org/debian/pool/main/c/cjson/cjson_${CJSON_VERSION}.orig.tar.gz /src/cjson.tar.gz
ADD https://download.libsodium.org/libsodium/releases/libsodium-${SODIUM_VERSION}.tar.gz /src/sodium.tar.gz
RUN cd /src && \
    test -n "${SODIUM_SHA256}" && echo "${SODIUM_SHA256}  sodium.tar.gz" | sha256sum -c - && \
    tar xzf cjson.tar.gz && \
    cmake -S cJSON-${CJSON_VERSION} -B cjson-build -DENABLE_CJSON_TEST=OFF \
          -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_INSTALL_LIBDIR=lib64 && \
    cmake --build cjson-build -j && cmake --install cjson-build && \
    tar xzf sodium.tar.gz && cd libsodium-${SODIUM_VERSION} && \
    ./configure --prefix=/usr --libdir=/usr/lib64 && make -j && make install
COPY CMakeLists.txt /src/ddb2fs/
COPY cmake/ /src/ddb2fs/cmake/
COPY sql/ /src/ddb2fs/sql/
COPY src/ /src/ddb2fs/src/
COPY tests/ /src/ddb2fs/tests/
# cmake --install puts the binary under bin/ and, with DDB2FS_INSTALL_LIBS, what it links (but
# glibc, libgcc and the loader, which the base image has) under lib/, found by CMake.
RUN cmake -S /src/ddb2fs -B /build -DCMAKE_BUILD_TYPE=Release -DDDB2FS_TESTS=OFF \
          -DDDB2FS_INSTALL_LIBS=ON && \
    cmake --build /build -j --target ddb2fs && \
    cmake --install /build --prefix /opt/ddb2fs

FROM public.ecr.aws/lambda/provided:al2023@${RUN_IMAGE_DIGEST}
COPY --from=build /opt/ddb2fs/lib/ /opt/lib/
COPY --from=build /opt/ddb2fs/bin/ddb2fs /var/runtime/ddb2fs
# not root (Lambda picks its own user; this is for running the image anywhere else)
USER 65534:65534
ENTRYPOINT ["/var/runtime/ddb2fs", "lambda"]
