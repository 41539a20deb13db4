# Shared by tools/demo and tools/test: installing what is missing, building.
# shellcheck shell=bash

# Debian packages the build needs, and those the tests add (used by the scripts that source this).
# shellcheck disable=SC2034
BUILD_PACKAGES=(gcc make cmake pkg-config libcjson-dev libsqlite3-dev libsodium-dev
                libcurl4-openssl-dev libssl-dev sqlite3 python3 curl)
# shellcheck disable=SC2034
TEST_PACKAGES=(libcmocka-dev clang clang-format libclang-rt-dev valgrind python3-cryptography
               python3-jmespath shellcheck gdb binutils)

say() {
    printf '\033[1m==> %s\033[0m\n' "$*"
}

# Installs the packages that are not installed yet.
ensure_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    say "installing ${missing[*]}"
    if [ "$(id -u)" -ne 0 ]; then
        echo "missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# build DIR [cmake options...]: configures and builds into DIR; shows the output on failure.
build() {
    local dir=$1 log
    shift
    log=$(mktemp)
    # Debian's python3 carries Debian's python3-cryptography, which the test servers use
    [ -x /usr/bin/python3 ] && set -- -DPython3_EXECUTABLE=/usr/bin/python3 "$@"
    if cmake -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DDDB2FS_WERROR=ON "$@" >"$log" 2>&1 &&
        cmake --build "$dir" -j "$(nproc)" >>"$log" 2>&1; then
        rm -f "$log"
        return 0
    fi
    cat "$log" >&2
    rm -f "$log"
    return 1
}

# ensure_command COMMAND PACKAGE: installs the Debian package when the command is missing.
ensure_command() {
    command -v "$1" >/dev/null 2>&1 || ensure_packages "$2"
}

# AWS's DynamoDB Local ships inside this npm package; the end-to-end test runs it.
DYNAMODB_LOCAL_PACKAGE=amplify-dynamodb-simulator@2.9.30

# fetch_dynamodb_local DIR: DynamoDBLocal.jar and its libraries into DIR, once.
fetch_dynamodb_local() {
    local dir=$1 tmp
    ensure_command java default-jre-headless || return 1
    [ -f "$dir/DynamoDBLocal.jar" ] && return 0
    ensure_command npm npm || return 1
    say "fetching DynamoDB Local ($DYNAMODB_LOCAL_PACKAGE, npm)"
    tmp=$(mktemp -d)
    if (cd "$tmp" && npm pack --silent "$DYNAMODB_LOCAL_PACKAGE" >/dev/null 2>&1) &&
        tar xzf "$tmp"/amplify-dynamodb-simulator-*.tgz -C "$tmp" &&
        [ -f "$tmp/package/emulator/DynamoDBLocal.jar" ]; then
        mkdir -p "$dir"
        cp -r "$tmp/package/emulator/." "$dir/"
        rm -rf "$tmp"
        return 0
    fi
    rm -rf "$tmp"
    echo "cannot fetch DynamoDB Local from the npm registry" >&2
    return 1
}

# install_node_package SRC DIR: a Node.js package of the tests (its package.json and .js files)
# with its npm dependencies, into DIR, when its package.json changed.
install_node_package() {
    local src=$1 dir=$2
    ensure_command npm npm || return 1
    mkdir -p "$dir"
    cp "$src"/*.js "$dir/"
    if ! cmp -s "$src/package.json" "$dir/package.json" || [ ! -d "$dir/node_modules" ]; then
        say "installing ${src#"$ROOT"/}'s dependencies (npm)"
        cp "$src/package.json" "$dir/"
        (cd "$dir" && npm install --no-audit --no-fund --no-package-lock >/dev/null 2>&1) || {
            echo "cannot install ${src#"$ROOT"/}'s dependencies from the npm registry" >&2
            return 1
        }
    fi
}

# install_node_peer DIR: the benchmarks' Node.js peer (tests/bench/node-peer), run in a network
# namespace of its own (ip, from iproute2).
install_node_peer() {
    ensure_command ip iproute2 || return 1
    install_node_package "$ROOT/tests/bench/node-peer" "$1"
}
