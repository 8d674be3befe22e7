#!/usr/bin/env bash
# Sets up a fresh Debian/Ubuntu machine for scientist-swarm: the system packages the agents need
# (NATS, TeX, poppler, Python with numpy and matplotlib, bubblewrap), then the npm dependencies.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  nats-server                      # the bus (JetStream)
  texlive-latex-base texlive-latex-recommended texlive-latex-extra texlive-fonts-recommended
  texlive-science texlive-plain-generic   # algorithm, algorithmicx, siunitx, ulem, soul: what the reference's paper templates load
  chktex                           # the writer's lint of the compiled paper
  poppler-utils                    # pdftotext, for the reviewers
  python3 python3-numpy python3-matplotlib   # the templates' experiments and plots
  python3-torch                    # grokking and 2d_diffusion (CPU build; a GPU node brings its own CUDA PyTorch)
  bubblewrap                       # the sandbox for generated code
  iproute2                         # ip netns: the fault tests put the server, the swarm and nodes on simulated hosts
  openssl                          # --tls: the certificate authority and server certificates a swarm makes
  chromium                         # headless browser for the live view's tests (test/ui.e2e.test.ts)
  graphviz                         # dot: npm run graph lays the statecharts out as SVG
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
  elif command -v sudo >/dev/null; then
    SUDO="sudo"
  else
    echo "setup: need root to install: apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: system packages present"
fi

node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (a<20||(a===20&&b<19)) { console.error(`setup: Node ${process.versions.node} is too old; scientist-swarm needs Node >= 20.19`); process.exit(1) }'
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
echo "setup: ready"
