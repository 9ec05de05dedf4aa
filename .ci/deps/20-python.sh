# Sourced by .ci/run. A virtualenv in .ci/venv (gitignored) with the Python SDKs the tests drive
# (.ci/requirements-test.txt); tests find its interpreter through TOLLGATE_TEST_PYTHON.
python_bin="$(command -v python3 || command -v python)"
if [[ ! -x "$ROOT/.ci/venv/bin/python" ]]; then
    "$python_bin" -m venv "$ROOT/.ci/venv"
fi
PIP_DISABLE_PIP_VERSION_CHECK=1 "$ROOT/.ci/venv/bin/python" -m pip install --quiet -r "$ROOT/.ci/requirements-test.txt"
export TOLLGATE_TEST_PYTHON="$ROOT/.ci/venv/bin/python"
echo "TOLLGATE_TEST_PYTHON=$TOLLGATE_TEST_PYTHON ($("$TOLLGATE_TEST_PYTHON" --version))"
