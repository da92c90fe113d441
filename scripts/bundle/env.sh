# Sourced by the bundle's scripts. Finds this machine's torch through its Python (PYTHON,
# else /opt/torch/.venv/bin/python3, else python3); unpacks payload.tar.xz once (with that
# Python: the machine may have no xz) into UNPACKED; points the bundle's binaries at
# torch's libraries and the CUDA libraries of its nvidia-* packages, OpenMPI and PMIx at
# their plugins and texts; tells the tests where everything is. Also sets BUNDLE (this
# folder) and SOURCE (the source tree it sits in).
BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOURCE="$(dirname "$BUNDLE")"
if [ -z "${PYTHON:-}" ]; then
  PYTHON=python3
  [ -x /opt/torch/.venv/bin/python3 ] && PYTHON=/opt/torch/.venv/bin/python3
fi
UNPACKED="${DIFFFIT_BUNDLE_DIR:-${TMPDIR:-/tmp}/difffit-bundle-$(sha256sum "$BUNDLE/payload.tar.xz" | cut -c1-16)}"
if [ ! -x "$UNPACKED/bin/difffit" ]; then
  "$PYTHON" - "$BUNDLE/payload.tar.xz" "$UNPACKED" <<'PY' || { echo "[bundle] cannot unpack $BUNDLE/payload.tar.xz" >&2; return 1 2>/dev/null || exit 1; }
import os, shutil, sys, tarfile
source, target = sys.argv[1:]
partial = target + ".partial-%d" % os.getpid()
with tarfile.open(source) as tar:
    tar.extractall(partial, **({"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}))
shutil.rmtree(target, ignore_errors=True)
os.rename(partial, target)
PY
fi
site="$("$PYTHON" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')" ||
  { echo "[bundle] $PYTHON cannot import torch: the bundle uses the machine's own torch" >&2; return 1 2>/dev/null || exit 1; }
cuda_libs="$(find "$site/nvidia" -mindepth 2 -maxdepth 3 -type d -name lib 2>/dev/null | sort | tr '\n' ':')"
export LD_LIBRARY_PATH="$site/torch/lib:$cuda_libs$UNPACKED/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export PATH="$UNPACKED/bin:$PATH"
export OPAL_PREFIX="$UNPACKED/openmpi" OPAL_BINDIR="$UNPACKED/bin" OPAL_LIBDIR="$UNPACKED/lib"
export OPAL_PKGLIBDIR="$UNPACKED/openmpi/lib" OPAL_DATADIR="$UNPACKED/openmpi/share"
export OPAL_PKGDATADIR="$UNPACKED/openmpi/share/openmpi" OPAL_SYSCONFDIR="$UNPACKED/openmpi/etc"
export PMIX_INSTALL_PREFIX="$UNPACKED/pmix"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_plm_rsh_agent=false
export DIFFFIT_FONT="$BUNDLE/share/DejaVuSans.ttf" DIFFFIT_FASHION_MNIST="$BUNDLE/data/fashion-mnist"
export DIFFFIT_TEST_BINARY="$UNPACKED/bin/difffit" DIFFFIT_TEST_SOURCE_DIR="$SOURCE" DIFFFIT_TEST_PYTHON="$PYTHON"
export DIFFFIT_TEST_SCRIPTS="$SOURCE/tests/python" DIFFFIT_TEST_MPIEXEC="$UNPACKED/bin/mpiexec"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
