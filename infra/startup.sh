#!/usr/bin/env bash
# Startup script of every Whisper GPU host (metadata "startup-script"; Google's guest agent runs it
# as root at every boot). It is the ONE owner of what `docker run --gpus all` needs (Ansible only checks
# these on the single VM, and configures the rest):
#   1. Docker Engine from Docker's apt repository,
#   2. the NVIDIA Container Toolkit, wired into Docker,
#   3. the NVIDIA driver with Google's installer, PINNED: cuda_installer v1.7.1, branch lts = driver
#      580.82.07 (its config.py VERSION_MAP), binary mode (the runfile of that version, hash-checked by
#      the installer; repo mode would install whatever `cuda-drivers` is newest). It reboots the VM;
#      the next boot runs this script again and continues where it stopped.
#   4. NVIDIA's udev rule for /dev/char links, and the persistence daemon's unit from the driver's sample.
# A CPU-only host (gpuType: none, attribute whisper-gpu=none) gets Docker only.
# Every step checks before it acts, so a re-run (each boot, or by hand) changes nothing.
# Progress is published for `make configure` (deploy/stack.py wait-host) as the guest attribute
# whisper/state: "booting" from the start of each boot, "ready" once all of the above works; and as
# the file ${READY_FILE} (tmpfs: gone after a reboot) for Ansible.
# Fleet hosts carry a `docker-image` metadata attribute: for them it then starts the service
# container on port 80, with the API key read from Secret Manager at boot (never from metadata).
# Single-VM hosts have no such attribute: Ansible and Fabric deploy the service there.
set -euo pipefail

METADATA_URL="${METADATA_URL:-http://metadata.google.internal/computeMetadata/v1}"
SECRETS_URL="${SECRETS_URL:-https://secretmanager.googleapis.com/v1}"
INSTALLER_DIR="${INSTALLER_DIR:-/opt/google/cuda-installer}"  # where Google's installer keeps its logs
RUN_DIR="${RUN_DIR:-@RUN_DIR@}"  # tmpfs: the API key never lands on the disk
READY_FILE="${READY_FILE:-@READY_FILE@}" # tmpfs: absent after a reboot until this script is done
DOCKER_DAEMON_JSON="${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}"
APT_KEYRINGS="${APT_KEYRINGS:-/etc/apt/keyrings}"
APT_SOURCES="${APT_SOURCES:-/etc/apt/sources.list.d}"
# node-exporter's textfile collector (monitoring/compose.yml mounts it): the VM's price for Prometheus.
TEXTFILE_DIR="${TEXTFILE_DIR:-@TEXTFILE_DIR@}"
SYSTEMD_DIR="${SYSTEMD_DIR:-/etc/systemd/system}"
IDLE_STOP_DIR="${IDLE_STOP_DIR:-/usr/local/lib/whisper}"  # the idle watch (infra/idle_stop.py)
# Docker's own install line (https://docs.docker.com/engine/install/ubuntu/). The plugins must be named:
# docker-compose-plugin is only a Recommends of docker-ce, which --no-install-recommends skips, and the
# monitoring role runs `docker compose`.
DOCKER_PACKAGES=(docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin)
INSTALLER_VERSION=v1.7.1
INSTALLER_URL="https://github.com/GoogleCloudPlatform/compute-gpu-installation/releases/download/cuda-installer-${INSTALLER_VERSION}/cuda_installer.pyz"
DRIVER_BRANCH=lts     # installer v1.7.1: lts = prod = 580.82.07
DRIVER_MIN_MAJOR=@DRIVER_MIN_MAJOR@ # CUDA 13.0's minimum (the image is CUDA 13): infra/host.py writes it
# The runfile installs the persistence daemon but no unit for it (NVIDIA's nvidia-persistenced(1): installing
# one is left to the user), only this sample installer. Google's installer runs it in its CUDA post-install
# step alone (v1.7.1 linux/cuda_installer/os_installers/__init__.py:434-453, configure_persistanced_service;
# the path is config.py:156-157), which binary driver mode never reaches: this script runs it the same way.
PERSISTENCED="${PERSISTENCED:-/usr/bin/nvidia-persistenced}"
PERSISTENCED_INIT="${PERSISTENCED_INIT:-/usr/share/doc/NVIDIA_GLX-1.0/samples/nvidia-persistenced-init.tar.bz2}"
PERSISTENCED_UNIT=nvidia-persistenced.service
# Containers lose the GPU after `systemctl daemon-reload` ("Failed to initialize NVML: Unknown Error") while
# /dev/char lacks links to the NVIDIA device nodes: NVIDIA's notice and fix, a udev rule that makes them
# whenever the driver binds (https://github.com/NVIDIA/nvidia-container-toolkit/issues/48, which
# NVIDIA/nvidia-docker#1730 points to; still seen with 580-era drivers, nvidia-container-toolkit#1227).
DEV_CHAR_RULE="${DEV_CHAR_RULE:-/lib/udev/rules.d/71-nvidia-dev-char.rules}"
DEV_CHAR_RULE_LINE='ACTION=="add", DEVPATH=="/bus/pci/drivers/nvidia", RUN+="/usr/bin/nvidia-ctk system create-dev-char-symlinks --create-all"'
CONTAINER=whisper
HOST_PORT=80 # the only port the firewall opens
SERVICE_PORT=@SERVICE_PORT@ # gunicorn's PORT inside the image: infra/host.py writes service/settings' default
# Seconds docker gives the container to stop, and gunicorn's drain within them (infra/host.py writes both:
# a spot preemption leaves about 30 s; the margin is service/settings' STOP_MARGIN_SECONDS)
STOP_TIMEOUT=@STOP_TIMEOUT@
GRACEFUL_TIMEOUT=@GRACEFUL_TIMEOUT@
APT_LOCK_TIMEOUT_S=600 # how long every apt call, the driver installer's too, waits for another's lock

log() { echo "whisper-startup: $*"; }

metadata() { # metadata PATH: the value, or nothing when the key is absent
  curl -fsS -H 'Metadata-Flavor: Google' "${METADATA_URL}/$1" 2>/dev/null || true
}

host_state() { # host_state VALUE: the guest attribute whisper/state (needs enable-guest-attributes)
  curl -fsS -X PUT -H 'Metadata-Flavor: Google' --data "$1" \
    "${METADATA_URL}/instance/guest-attributes/whisper/state" >/dev/null 2>&1 || log "could not set whisper/state=$1"
}

apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="${APT_LOCK_TIMEOUT_S}" install -y -q \
    --no-install-recommends "$@"
}

installed() { # installed PACKAGE: true when dpkg has it fully installed
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"
}

install_docker() {
  # By package, not by `command -v docker`: a host from an older script has docker but lacks the plugins.
  local package missing=()
  for package in "${DOCKER_PACKAGES[@]}"; do
    installed "${package}" || missing+=("${package}")
  done
  if [ "${#missing[@]}" -eq 0 ]; then return 0; fi
  log "installing Docker Engine (missing: ${missing[*]})"
  local os_id codename
  # shellcheck source=/dev/null
  os_id="$(. /etc/os-release && echo "${ID}")"
  # shellcheck source=/dev/null
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME}")"
  install -m 0755 -d "${APT_KEYRINGS}"
  curl -fsSL "https://download.docker.com/linux/${os_id}/gpg" -o "${APT_KEYRINGS}/docker.asc"
  chmod a+r "${APT_KEYRINGS}/docker.asc"
  echo "deb [arch=$(dpkg --print-architecture) signed-by=${APT_KEYRINGS}/docker.asc]" \
    "https://download.docker.com/linux/${os_id} ${codename} stable" \
    >"${APT_SOURCES}/docker.list"
  apt-get -o DPkg::Lock::Timeout="${APT_LOCK_TIMEOUT_S}" update -q
  apt_install "${DOCKER_PACKAGES[@]}"
}

install_container_toolkit() {
  if ! installed nvidia-container-toolkit; then
    log "installing the NVIDIA Container Toolkit"
    # Same key and source line as the Ansible role container_toolkit_check, so neither rewrites them.
    local repo=https://nvidia.github.io/libnvidia-container
    install -m 0755 -d "${APT_KEYRINGS}"
    curl -fsSL "${repo}/gpgkey" -o "${APT_KEYRINGS}/nvidia-container-toolkit.asc"
    # shellcheck disable=SC2016 # $(ARCH) is apt's own variable, written literally
    echo "deb [signed-by=${APT_KEYRINGS}/nvidia-container-toolkit.asc]" \
      "${repo}/stable/deb/"'$(ARCH) /' >"${APT_SOURCES}/nvidia-container-toolkit.list"
    apt-get -o DPkg::Lock::Timeout="${APT_LOCK_TIMEOUT_S}" update -q
    apt_install nvidia-container-toolkit
  fi
  if ! grep -qs '"nvidia"' "${DOCKER_DAEMON_JSON}"; then
    log "registering the nvidia runtime with Docker"
    nvidia-ctk runtime configure --runtime=docker --config="${DOCKER_DAEMON_JSON}"
    systemctl restart docker
  fi
}

install_driver() {
  if ! nvidia-smi >/dev/null 2>&1; then
    log "installing NVIDIA driver branch ${DRIVER_BRANCH} with Google's installer ${INSTALLER_VERSION} (it reboots; this script resumes)"
    local installer="${INSTALLER_DIR}/cuda_installer-${INSTALLER_VERSION}.pyz"
    mkdir -p "${INSTALLER_DIR}"
    [ -s "${installer}" ] || curl -fsSL "${INSTALLER_URL}" -o "${installer}"
    # Its own apt-get calls wait for no lock (v1.7.1 os_installers/debian.py:57-86, ubuntu.py:48-58), and
    # unattended-upgrades may hold it at first boot. It runs them with this script's environment
    # (os_installers/__init__.py:508-548, environment=None), so APT_CONFIG (apt.conf(5): read after
    # /etc/apt/apt.conf.d) gives them the same lock timeout as this script's own apt calls.
    echo "DPkg::Lock::Timeout \"${APT_LOCK_TIMEOUT_S}\";" >"${INSTALLER_DIR}/apt-lock.conf"
    APT_CONFIG="${INSTALLER_DIR}/apt-lock.conf" python3 "${installer}" install_driver \
      --installation-mode=binary --installation-branch="${DRIVER_BRANCH}"
  fi
  local version # still here without a reboot: the driver must answer now, and be new enough
  version="$(nvidia-smi --query-gpu=driver_version --format=csv,noheader | head -n1)"
  if [ "${version%%.*}" -lt "${DRIVER_MIN_MAJOR}" ]; then
    log "driver ${version} is older than ${DRIVER_MIN_MAJOR} (CUDA 13): the image cannot run"
    return 1
  fi
}

install_dev_char_links() { # NVIDIA's udev rule (DEV_CHAR_RULE), and the links for this boot
  if [ "$(cat "${DEV_CHAR_RULE}" 2>/dev/null)" = "${DEV_CHAR_RULE_LINE}" ]; then return 0; fi
  log "adding NVIDIA's /dev/char rule (containers keep the GPU across daemon-reload)"
  mkdir -p "$(dirname "${DEV_CHAR_RULE}")"
  printf '%s\n' "${DEV_CHAR_RULE_LINE}" >"${DEV_CHAR_RULE}"
  nvidia-ctk system create-dev-char-symlinks --create-all # the driver is bound already on this boot
}

install_persistenced() { # the persistence daemon's unit, from the driver's own sample (see PERSISTENCED_INIT)
  if systemctl cat "${PERSISTENCED_UNIT}" >/dev/null 2>&1; then return 0; fi
  if [ ! -x "${PERSISTENCED}" ] || [ ! -f "${PERSISTENCED_INIT}" ]; then
    log "no ${PERSISTENCED} or ${PERSISTENCED_INIT}: persistence mode stays off"
    return 0
  fi
  log "installing ${PERSISTENCED_UNIT} with the driver's sample installer"
  installed bzip2 || apt_install bzip2 # the sample is a .tar.bz2
  local dir
  dir="$(mktemp -d)"
  tar -C "${dir}" -xjf "${PERSISTENCED_INIT}"
  # It creates the daemon's user, writes the unit, enables and starts it (NVIDIA's init/install.sh).
  (cd "${dir}" && sh nvidia-persistenced-init/install.sh) || { rm -rf "${dir}"; return 1; }
  rm -rf "${dir}"
}

secret_value() { # secret_value SECRET: prints the latest version of a Secret Manager secret
  local secret="$1" project header_file
  project="$(metadata project/project-id)"
  header_file="$(mktemp -p "${RUN_DIR}")"
  # The access token goes to curl in a 0600 file, not on its command line (visible in ps).
  metadata instance/service-accounts/default/token |
    python3 -c 'import json, sys; print("Authorization: Bearer " + json.load(sys.stdin)["access_token"])' \
      >"${header_file}"
  # Its callers run it in $(...), where bash does not apply `set -e`: a failed read must be its status.
  local value status=0
  value="$(curl -fsS -H "@${header_file}" \
    "${SECRETS_URL}/projects/${project}/secrets/${secret}/versions/latest:access" |
    python3 -c 'import base64, json, sys
sys.stdout.write(base64.b64decode(json.load(sys.stdin)["payload"]["data"]).decode())')" || status=$?
  rm -f "${header_file}"
  if [ "${status}" -ne 0 ] || [ -z "${value}" ]; then
    log "could not read the secret ${secret} from Secret Manager" >&2
    return 1
  fi
  printf '%s' "${value}"
}

api_key_line() { # api_key_line SECRET: prints API_KEYS=<key> from Secret Manager
  local key
  key="$(secret_value "$1")" # a separate assignment: a failed read stops the script (set -e)
  echo "API_KEYS=${key}"
}

pull_image() { # pull_image IMAGE: with a Docker Hub token when the stack set one, else anonymously
  local image="$1" user token_secret config
  user="$(metadata instance/attributes/dockerhub-username)"
  token_secret="$(metadata instance/attributes/dockerhub-token-secret)"
  if [ -z "${token_secret}" ]; then
    docker pull -q "${image}"
    return
  fi
  # Docker Hub limits anonymous pulls per IP, and fleet VMs share Cloud NAT's addresses: log in. The token
  # goes from Secret Manager to `docker login --password-stdin` through a pipe (never an argument), into a
  # throwaway 0700 config on tmpfs, gone after the pull
  # (https://github.com/docker/cli/blob/master/docs/reference/commandline/login.md, --password-stdin).
  config="$(mktemp -d -p "${RUN_DIR}")"
  secret_value "${token_secret}" | docker --config "${config}" login --username "${user}" --password-stdin >/dev/null
  docker --config "${config}" pull -q "${image}" || { rm -rf "${config}"; return 1; }
  rm -rf "${config}"
}

jobs_store_lines() { # the fleet's job store (infra/jobs_store.py): JOBS_DATABASE_URL, JOBS_BUCKET, JOBS_TTL
  local host name user password_secret bucket ttl password
  host="$(metadata instance/attributes/jobs-database-host)"
  if [ -z "${host}" ]; then return 0; fi
  name="$(metadata instance/attributes/jobs-database-name)"
  user="$(metadata instance/attributes/jobs-database-user)"
  password_secret="$(metadata instance/attributes/jobs-database-password-secret)"
  bucket="$(metadata instance/attributes/jobs-bucket)"
  ttl="$(metadata instance/attributes/jobs-ttl-seconds)"
  # The password comes from Secret Manager now, never from metadata; letters and digits only (the stack
  # generates it so), hence no escaping in the URL. sslmode=require: the instance takes TLS connections only.
  password="$(secret_value "${password_secret}")" # a separate assignment: a failed read stops the script
  echo "JOBS_DATABASE_URL=postgresql://${user}:${password}@${host}:5432/${name}?sslmode=require"
  echo "JOBS_BUCKET=${bucket}"
  if [ -n "${ttl}" ]; then echo "JOBS_TTL=${ttl}"; fi
}

write_service_env() { # write_service_env FILE SECRET: the container's settings beyond the image's own
  local env_file="$1" secret="$2"
  # gunicorn's drain must end before docker's stop timeout, or in-flight requests are killed
  echo "GRACEFUL_TIMEOUT=${GRACEFUL_TIMEOUT}" >"${env_file}"
  if [ -n "${secret}" ]; then api_key_line "${secret}" >>"${env_file}"; fi
  jobs_store_lines >>"${env_file}"
}

run_service() {
  local image secret env_file
  image="$(metadata instance/attributes/docker-image)"
  if [ -z "${image}" ]; then
    log "host ready; no docker-image attribute, so the deploy tool starts the service"
    return 0
  fi
  if [ "$(docker inspect -f '{{.Config.Image}} {{.State.Running}}' "${CONTAINER}" 2>/dev/null)" \
    = "${image} true" ]; then
    log "service already runs ${image}"
    return 0
  fi
  secret="$(metadata instance/attributes/api-key-secret)"
  mkdir -p "${RUN_DIR}"
  chmod 0700 "${RUN_DIR}"
  env_file="${RUN_DIR}/service.env"
  (umask 077 && write_service_env "${env_file}" "${secret}")
  log "starting ${image}"
  pull_image "${image}"
  docker rm -f "${CONTAINER}" >/dev/null 2>&1 || true
  docker run -d --name "${CONTAINER}" --restart unless-stopped --gpus all \
    -p "${HOST_PORT}:${SERVICE_PORT}" --env-file "${env_file}" \
    --stop-timeout "${STOP_TIMEOUT}" "${image}"
  rm -f "${env_file}"
}

write_price_metric() { # the stack's price per running hour (infra/pricing.py or pricePerHour) for Prometheus
  local price labels file="${TEXTFILE_DIR}/whisper_price.prom"
  price="$(metadata instance/attributes/whisper-price-per-hour)"
  labels="$(metadata instance/attributes/whisper-price-labels)"
  mkdir -p "${TEXTFILE_DIR}" # always: node-exporter reports a scrape error for a missing directory
  if [ -z "${price}" ]; then rm -f "${file}"; return 0; fi
  # Written whole, then renamed: node-exporter never reads half a file.
  printf '%s\n' \
    "# HELP vm_price_dollars_per_hour What this VM costs per running hour (stack setting or list price)." \
    "# TYPE vm_price_dollars_per_hour gauge" \
    "vm_price_dollars_per_hour{${labels}} ${price}" >"${file}.tmp"
  chmod 0644 "${file}.tmp"
  mv "${file}.tmp" "${file}"
}

install_idle_stop() { # with idleStopMinutes: the idle watch, once a minute (systemd timer); without: none
  local minutes unit="${SYSTEMD_DIR}/whisper-idle-stop"
  minutes="$(metadata instance/attributes/whisper-idle-stop-minutes)"
  if [ -z "${minutes}" ]; then
    if [ -f "${unit}.timer" ]; then
      log "idleStopMinutes is off: removing the idle watch"
      systemctl disable --now whisper-idle-stop.timer || true
      rm -f "${unit}.timer" "${unit}.service"
      systemctl daemon-reload
    fi
    return 0
  fi
  mkdir -p "${IDLE_STOP_DIR}"
  metadata instance/attributes/whisper-idle-stop-script >"${IDLE_STOP_DIR}/idle_stop.py"
  cat >"${unit}.service" <<UNIT
[Unit]
Description=Stop this VM after ${minutes} minutes without a request to Whisper (idleStopMinutes)

[Service]
Type=oneshot
ExecStart=/usr/bin/python3 ${IDLE_STOP_DIR}/idle_stop.py
UNIT
  cat >"${unit}.timer" <<UNIT
[Unit]
Description=Run the Whisper idle watch every minute

[Timer]
OnActiveSec=1min
OnUnitActiveSec=1min
AccuracySec=5s

[Install]
WantedBy=timers.target
UNIT
  systemctl daemon-reload
  systemctl enable --now whisper-idle-stop.timer
  log "idle watch on: the VM stops itself after ${minutes} minutes without a request"
}

install_gpu() { # the toolkit, the driver and what goes with them; none on a CPU-only host (gpuType: none)
  if [ "$(metadata instance/attributes/whisper-gpu)" = none ]; then
    log "CPU-only host (gpuType: none): no NVIDIA toolkit or driver"
    return 0
  fi
  install_container_toolkit
  install_driver
  install_dev_char_links
  install_persistenced
}

main() {
  host_state booting
  install_docker
  install_gpu
  touch "${READY_FILE}"
  host_state ready
  write_price_metric
  # After the driver: its install reboots the VM, and the watch's clock starts at each boot.
  install_idle_stop
  run_service
  log "done"
}

# Sourced (tests, or by hand to run one step) it only defines the steps; run, it runs them all.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
