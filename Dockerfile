# The ddb2fs Lambda function's container image: built with CMake on Amazon Linux 2023, run on
# AWS's provided.al2023 base image with the binary and only the shared libraries it links.
#
#   docker build -t ddb2fs .
#
# Libraries the binary links directly (checked against the binary CI builds, with ldd, by
# tests/integration/test_image.py):
ARG DIRECT_LIBS="libcjson libsodium libsqlite3 libcurl libcrypto"

FROM public.ecr.aws/amazonlinux/amazonlinux:2023 AS build
RUN dnf install -y gcc make cmake pkgconf-pkg-config tar gzip findutils \
        libcurl-devel openssl-devel sqlite-devel && \
    dnf clean all
# cJSON and libsodium are not in Amazon Linux 2023's repositories: built from their releases.
ARG CJSON_VERSION=1.7.18
ARG SODIUM_VERSION=1.0.20
ADD https://github.com/DaveGamble/cJSON/archive/refs/tags/v${CJSON_VERSION}.tar.gz /src/cjson.tar.gz
ADD https://download.libsodium.org/libsodium/releases/libsodium-${SODIUM_VERSION}.tar.gz /src/sodium.tar.gz
RUN cd /src && tar xzf cjson.tar.gz && \
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
RUN cmake -S /src/ddb2fs -B /build -DCMAKE_BUILD_TYPE=Release -DDDB2FS_TESTS=OFF && \
    cmake --build /build -j --target ddb2fs
# What the binary links, but glibc and libgcc, which the base image has.
RUN mkdir -p /opt/lib && \
    ldd /build/ddb2fs | awk '/=> \// {print $3}' | \
    grep -vE '/(libc|libm|libdl|libpthread|librt|libgcc_s)\.so|ld-linux' | \
    xargs -r -I{} cp -L {} /opt/lib/

FROM public.ecr.aws/lambda/provided:al2023
COPY --from=build /opt/lib/ /opt/lib/
COPY --from=build /build/ddb2fs /var/runtime/ddb2fs
ENTRYPOINT ["/var/runtime/ddb2fs", "lambda"]
