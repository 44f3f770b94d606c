# Sourced by scripts/serve and scripts/test: make .venv and install Keyhouse into it with the
# extras given ("" or "[test,postgres]"). Installs again only when pyproject.toml or the extras
# changed since the last install, so a second start needs no package index.
keyhouse_venv() {
  local extras="$1" python="${PYTHON:-python3}" stamp=.venv/.keyhouse-installed hash
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
  fi
  hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"
  # the stamp holds "HASH EXTRAS" of the last install; any extras cover none
  if [ -f "$stamp" ] && { grep -qxF -- "$hash $extras" "$stamp" ||
      { [ -z "$extras" ] && grep -q "^$hash " "$stamp"; }; }; then
    return 0
  fi
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".$extras"
  echo "$hash $extras" > "$stamp"
}
