# Bind mounts for a chroot in $ROOT (sourced by scripts/torch2-check.sh and
# scripts/gpu-standin.sh): mount_all mounts /proc, /sys, /dev and /dev/shm (shared memory
# for MPI); unmount_all, set as the EXIT trap, undoes them in reverse order. $SUDO is empty
# for root, else "sudo".
mounts=(proc sys dev dev/shm)
unmount_all() {
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    mountpoint -q "$ROOT/${mounts[i]}" && $SUDO umount "$ROOT/${mounts[i]}" || true
  done
}
mount_all() {
  for m in "${mounts[@]}"; do
    mountpoint -q "$ROOT/$m" || $SUDO mount --bind "/$m" "$ROOT/$m"
  done
}
trap unmount_all EXIT
