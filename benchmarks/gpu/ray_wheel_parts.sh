#!/usr/bin/env bash
# Carries Ray 2.60.0 (cp312 manylinux x86_64 wheel, ~76 MiB: over one call's 64 MiB) to the GPU machine in two
# parts, as ../shared/tools/vllm-device-bundle does for vLLM. The GPU image already has every Ray and Ray Data
# dependency (click, filelock, msgpack, packaging, protobuf, pyyaml, requests, numpy, pandas, pyarrow, fsspec;
# KINDS.md's package list) except jsonschema and its three, which the vLLM bundle's part3/deps installs.
#
#   bash benchmarks/gpu/ray_wheel_parts.sh build      # here, in the repository root: .whl/ray-part1, ray-part2
#
# Then on the GPU machine, each command within 30 s of the previous one (the machine is kept that long):
#   1. carry .whl/ray-part1:  bash .whl/ray-part1/stage.sh
#   2. carry .whl/ray-part2:  bash .whl/ray-part2/stage.sh
#   3. any later command:     bash benchmarks/gpu/ray_wheel_parts.sh install && export PYTHONPATH=$HOME/ray-site:$PYTHONPATH
# ``install`` joins the staged parts, checks the wheel's sha256 and unpacks it into $HOME/ray-site (once per
# machine). Keep /.whl/ in .git/info/exclude.
set -euo pipefail
case ${1:-} in
build)
  out=.whl; work=$(mktemp -d)
  wheel=$(ls "$out"/ray/ray-2.60.0-cp312-cp312-manylinux2014_x86_64.whl 2>/dev/null || true)
  if [[ -z $wheel ]]; then
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux2014_x86_64 -d "$work" ray==2.60.0
    wheel=$(ls "$work"/ray-2.60.0-cp312-*.whl)
  fi
  rm -rf "$out/ray-part1" "$out/ray-part2"; mkdir -p "$out/ray-part1" "$out/ray-part2"
  name=$(basename "$wheel")
  split -n 2 "$wheel" "$work/ray.whl."
  mv "$work/ray.whl.aa" "$out/ray-part1/"; mv "$work/ray.whl.ab" "$out/ray-part2/"
  sum=$(sha256sum "$wheel" | cut -d' ' -f1)
  for part in ray-part1 ray-part2; do
    printf 'mkdir -p $HOME/ray-stage && cp .whl/%s/ray.whl.* $HOME/ray-stage/ && echo %s > $HOME/ray-stage/NAME && echo %s > $HOME/ray-stage/SHA256 && ls -l $HOME/ray-stage\n' \
      "$part" "$name" "$sum" > "$out/$part/stage.sh"
  done
  rm -rf "$work"
  du -sh "$out"/ray-part*
  ;;
install)
  if [[ ! -d $HOME/ray-site/ray ]]; then
    stage=$HOME/ray-stage
    [[ -f $stage/ray.whl.aa && -f $stage/ray.whl.ab ]] \
      || { echo "error: the Ray parts are not staged on this machine: run stage.sh of .whl/ray-part1 and ray-part2 again" >&2; exit 3; }
    wheel=/tmp/$(cat "$stage/NAME")
    cat "$stage/ray.whl.aa" "$stage/ray.whl.ab" > "$wheel"
    echo "$(cat "$stage/SHA256")  $wheel" | sha256sum -c --quiet
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$HOME/ray-site" "$wheel"
  fi
  PYTHONPATH=$HOME/ray-site${PYTHONPATH:+:$PYTHONPATH} python3 -c 'import ray, ray.data; print("ray", ray.__version__)'
  ;;
*)
  sed -n 2,15p "$0"; exit 2
  ;;
esac
