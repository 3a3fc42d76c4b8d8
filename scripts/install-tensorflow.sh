#!/usr/bin/env bash
# `npm run add-tensorflow`: the `tensorflow` backend (TensorFlow's C library with oneDNN) without
# Google's download host, which these machines cannot reach (issue 7, FAST-PATH.md).
#
#   1. @tensorflow/tfjs-node@4.22.0 from npm with its install script off (that script would
#      download libtensorflow 2.9.1 and a prebuilt addon from storage.googleapis.com);
#   2. the `tensorflow-cpu` wheel from PyPI (pip download, no install): from 2.12 on it ships
#      libtensorflow_cc.so.2, which exports the TF_*/TFE_* C API the binding calls, and
#      libtensorflow_framework.so.2, with the C headers — no libpython needed;
#   3. the two libraries into tfjs-node's deps/lib (linked as -ltensorflow -ltensorflow_framework,
#      found at run time through the addon's rpath $ORIGIN/../../deps/lib), the headers into
#      deps/include;
#   4. the addon built from source by npm's own node-gyp against the local Node headers
#      (--nodedir, so nothing is downloaded);
#   5. a check that tfjs loads it and a matMul agrees with a hand-computed product.
#
# Idempotent: exits at once when the backend already loads. Fails (exit 1) with one line saying
# why where it cannot build; the project then keeps running on wasm. Downloads come from npm and
# PyPI only. Big files stay out of git: the wheel is cached in .cache/tensorflow/ (gitignored),
# the libraries live in node_modules/.
#
# Environment: RING_TF_WHEEL_VERSION (default 2.15.1, the version tested here),
#              RING_TF_KEEP_WHEEL=1 keeps the ~200 MB wheel in the cache after extraction.
set -euo pipefail
cd "$(dirname "$0")/.."

TF_WHEEL_VERSION="${RING_TF_WHEEL_VERSION:-2.15.1}"
TFJS_NODE_VERSION=4.22.0
pkg=node_modules/@tensorflow/tfjs-node
cache=.cache/tensorflow

say() { printf 'add-tensorflow: %s\n' "$*" >&2; }
fail() {
  say "$* — the tensorflow backend is not installed; the wasm backend stays the default"
  exit 1
}

# NOTE: loads the addon in a child process: a broken libtensorflow can abort the process.
check_backend() {
  TF_CPP_MIN_LOG_LEVEL=2 node --input-type=module -e "
    const tf = await import('@tensorflow/tfjs-node');
    if (tf.getBackend() !== 'tensorflow') throw new Error('backend is ' + tf.getBackend());
    const y = await tf.matMul(tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5, 6], [7, 8]])).data();
    if ([...y].join() !== '19,22,43,50') throw new Error('matMul gave ' + [...y].join());
    const lib = tf.backend().binding.TF_Version;
    console.log('add-tensorflow: tensorflow backend ready (tfjs-node ' + tf.version['tfjs-node'] + ', TensorFlow C library ' + lib + ')');
  " 2>&1
}

if [ -f "$pkg/lib/napi-v8/tfjs_binding.node" ] && check_backend >/dev/null 2>&1; then
  check_backend
  exit 0
fi

[ "$(uname -s)" = Linux ] && [ "$(uname -m)" = x86_64 ] ||
  fail "only Linux x86_64 is supported by this script (here: $(uname -s) $(uname -m))"

# 1. The package, without its install script. NOTE: npm 11 answers "up to date" to
# `npm install --no-save` of a package the project lists as an optional peer dependency, so the
# package and its own dependencies are installed in a side folder and copied in: tfjs-node at
# node_modules/@tensorflow/tfjs-node, its dependencies nested under it, except @tensorflow/*,
# which must resolve to the project's single tfjs copy (two copies = two engines, and the backend
# would register in the wrong one).
if ! [ -f "$pkg/package.json" ] ||
  [ "$(node -p "require('./$pkg/package.json').version")" != "$TFJS_NODE_VERSION" ]; then
  say "installing @tensorflow/tfjs-node@$TFJS_NODE_VERSION from npm (scripts off)"
  side="$cache/npm"
  rm -rf "$side" && mkdir -p "$side" && echo '{"private":true}' >"$side/package.json"
  (cd "$side" && npm install --ignore-scripts --no-audit --no-fund --no-package-lock \
    "@tensorflow/tfjs-node@$TFJS_NODE_VERSION" >&2) || fail "npm install @tensorflow/tfjs-node failed"
  [ "$(node -p "require('./node_modules/@tensorflow/tfjs/package.json').version")" = \
    "$(node -p "require('./$side/node_modules/@tensorflow/tfjs/package.json').version")" ] ||
    fail "tfjs-node@$TFJS_NODE_VERSION wants another @tensorflow/tfjs than the project's"
  rm -rf "$pkg"
  mv "$side/node_modules/@tensorflow/tfjs-node" "$pkg"
  rm -rf "$side/node_modules/@tensorflow" "$side/node_modules/.bin" "$side/node_modules/.package-lock.json"
  mv "$side/node_modules" "$pkg/node_modules"
  rm -rf "$side"
fi

# 2. The wheel. Pinned to CPython 3.11 / manylinux2014 so the local Python's version does not
# matter: only the two shared libraries and the headers are used.
python=$(command -v python3 || true)
[ -n "$python" ] && "$python" -m pip --version >/dev/null 2>&1 || fail "python3 with pip is needed to fetch the wheel from PyPI"
mkdir -p "$cache"
wheel=$(ls "$cache"/tensorflow_cpu-"$TF_WHEEL_VERSION"-*.whl 2>/dev/null | head -1 || true)
if [ -z "$wheel" ]; then
  say "downloading tensorflow-cpu==$TF_WHEEL_VERSION from PyPI (~200 MB)"
  "$python" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --platform manylinux2014_x86_64 --python-version 311 --implementation cp \
    -d "$cache" "tensorflow-cpu==$TF_WHEEL_VERSION" >&2 || fail "pip download tensorflow-cpu==$TF_WHEEL_VERSION failed"
  wheel=$(ls "$cache"/tensorflow_cpu-"$TF_WHEEL_VERSION"-*.whl | head -1)
fi

# 3. Libraries and headers. The binding includes tensorflow/c/** and
# tensorflow/core/platform/ctstring_internal.h; from 2.13 on these include tsl/ (tsl/c, tsl/platform).
say "extracting libtensorflow from $(basename "$wheel")"
rm -rf "$pkg/deps" "$cache/x"
"$python" - "$wheel" "$cache/x" <<'EOF' || fail "could not extract the wheel"
import sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
want = ('tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2')
heads = ('tensorflow/include/tensorflow/c/', 'tensorflow/include/tensorflow/core/platform/',
         'tensorflow/include/tsl/')
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n in want or n.startswith(heads)]
    missing = [w for w in want if w not in names]
    if missing:
        sys.exit(f'the wheel has no {", ".join(missing)}')
    for n in names:
        z.extract(n, out)
EOF
mkdir -p "$pkg/deps/lib"
mv "$cache/x/tensorflow/libtensorflow_cc.so.2" "$cache/x/tensorflow/libtensorflow_framework.so.2" "$pkg/deps/lib/"
mv "$cache/x/tensorflow/include" "$pkg/deps/include"
rm -rf "$cache/x"
# NOTE: -ltensorflow resolves through this link; the addon then records the SONAME
# libtensorflow_cc.so.2, which the rpath finds.
ln -sf libtensorflow_cc.so.2 "$pkg/deps/lib/libtensorflow.so"
ln -sf libtensorflow_framework.so.2 "$pkg/deps/lib/libtensorflow_framework.so"
[ "${RING_TF_KEEP_WHEEL:-0}" = 1 ] || rm -f "$wheel"

# 4. The addon. npm bundles node-gyp; the Node headers come with the Node installation.
gyp="$(npm root -g)/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$gyp" ] || gyp="$(dirname "$(dirname "$(command -v node)")")/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js"
[ -f "$gyp" ] || fail "node-gyp (bundled with npm) not found"
nodedir="$(dirname "$(dirname "$(command -v node)")")"
[ -f "$nodedir/include/node/node_api.h" ] || fail "Node headers not found in $nodedir/include/node"
napi=$(node -p 'process.versions.napi')
[ "$napi" -ge 8 ] && napi=8 # the package's module_path is lib/napi-v{3..8}
say "building the addon (node-gyp, N-API $napi)"
(cd "$pkg" && node "$gyp" rebuild --nodedir="$nodedir" --module_name=tfjs_binding \
  --module_path="$PWD/lib/napi-v$napi" --napi_build_version="$napi") >"$cache/build.log" 2>&1 ||
  { tail -20 "$cache/build.log" >&2; fail "the addon did not build (log: $cache/build.log)"; }
rm -rf "$pkg/build/Release/obj.target"

# 5. Check.
check_backend || fail "the built addon does not load"
