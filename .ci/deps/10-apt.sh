# Sourced by .ci/run. Debian packages the tests drive: openssl (test certificates), nginx (a
# constant upstream for benchmarks), wrk, chromium (the dashboard's browser test).
# redis-server is installed by .ci/run itself (step 3).
apt_packages=(openssl nginx-light wrk chromium)
missing=()
for package in "${apt_packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if ((${#missing[@]})); then
    echo "installing Debian packages: ${missing[*]}"
    added_policy=0
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && added_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}" \
        || { apt-get update -q && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -q --no-install-recommends "${missing[@]}"; }
    ((added_policy)) && rm -f /usr/sbin/policy-rc.d
fi
export TOLLGATE_TEST_CHROMIUM="${TOLLGATE_TEST_CHROMIUM:-$(command -v chromium || true)}"
echo "TOLLGATE_TEST_CHROMIUM=$TOLLGATE_TEST_CHROMIUM"
