# Source me: the project's virtual environment, and the Inception weights' torch hub cache.
# TORCH_HOME: kept if set; else ../shared/torch-home when present (offline machines);
# else torch's default (~/.cache/torch), where torch-fidelity downloads the weights once.
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="$_root/.venv/bin:$PATH"
if [ -z "${TORCH_HOME:-}" ] && [ -d "$_root/../shared/torch-home" ]; then
  export TORCH_HOME="$(cd "$_root/../shared/torch-home" && pwd)"
fi
unset _root
