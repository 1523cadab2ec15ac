# A Coder template whose workspaces are cvm pods on Kubernetes: where Coder's
# kubernetes-envbox template runs envbox (with dockerd and sysbox inside), this
# runs the cvm image (the top-level Dockerfile, built with the workspace image
# of examples/workspace inside) as the pod's PID 1. envbox's variables keep
# their names (CODER_INNER_IMAGE, CODER_MOUNTS, CODER_BOOTSTRAP_SCRIPT, ...:
# the README's table says what each maps to). CODER_INNER_IMAGE below is the
# directory of the workspace image built into the cvm image; a registry
# reference (codercom/enterprise-base:ubuntu, as envbox's template has it)
# works too: cvm pulls it into the state volume before the workspace starts.
#
#   coder templates push cvm -d examples/coder

terraform {
  required_providers {
    coder = {
      source = "coder/coder"
    }
    kubernetes = {
      source = "hashicorp/kubernetes"
    }
  }
}

variable "use_kubeconfig" {
  type        = bool
  default     = false
  description = "Use ~/.kube/config of the Coder host (true), or the service account of Coder's own pod in the cluster (false)."
}

variable "namespace" {
  type        = string
  description = "The namespace to create workspaces in (it must exist)."
}

variable "cvm_image" {
  type        = string
  default     = "cvm:latest"
  description = "The cvm outer image (docker build -t cvm --build-arg WORKSPACE_IMAGE=cvm-workspace .), pinned to a digest in production."
}

variable "stop_timeout" {
  type        = number
  default     = 30
  description = "Seconds cvm gives the workspace between SIGTERM and SIGKILL on stop; the pod's grace period is this plus 10."
}

data "coder_parameter" "cpu" {
  name         = "cpu"
  display_name = "CPUs"
  description  = "CPU limit of the workspace (the pod's limit; cvm copies it to the workspace and its /proc)."
  type         = "number"
  default      = 2
  mutable      = true
  validation {
    min = 1
    max = 16
  }
}

data "coder_parameter" "memory" {
  name         = "memory"
  display_name = "Memory (GiB)"
  description  = "Memory limit of the workspace (the pod's limit; free and /proc/meminfo show it)."
  type         = "number"
  default      = 4
  mutable      = true
  validation {
    min = 1
    max = 64
  }
}

data "coder_parameter" "disk" {
  name         = "disk"
  display_name = "Disk (GiB)"
  description  = "Size of the volume that holds the home directory, Docker's data and the workspace's changes."
  type         = "number"
  default      = 20
  mutable      = false
  validation {
    min = 10
    max = 500
  }
}

provider "coder" {}

provider "kubernetes" {
  config_path = var.use_kubeconfig ? "~/.kube/config" : null
}

data "coder_workspace" "me" {}
data "coder_workspace_owner" "me" {}

locals {
  name = "coder-${lower(data.coder_workspace_owner.me.name)}-${lower(data.coder_workspace.me.name)}"
}

resource "coder_agent" "main" {
  os   = "linux"
  arch = "amd64"
  # Runs inside the workspace as CODER_INNER_USERNAME, started by cvm's
  # bootstrap (CODER_BOOTSTRAP_SCRIPT below) once the workspace is up.
  startup_script = <<-EOT
    #!/bin/bash
    # The home volume starts empty: give it the image's skeleton once.
    [ -f ~/.profile ] || cp /etc/skel/.profile ~/
    [ -f ~/.bashrc ] || cp /etc/skel/.bashrc ~/
  EOT

  metadata {
    display_name = "CPU (cgroup)"
    key          = "cpu"
    script       = "coder stat cpu"
    interval     = 10
    timeout      = 1
  }
  metadata {
    display_name = "Memory (cgroup)"
    key          = "memory"
    script       = "coder stat mem"
    interval     = 10
    timeout      = 1
  }
}

resource "kubernetes_persistent_volume_claim" "data" {
  metadata {
    name      = "${local.name}-data"
    namespace = var.namespace
  }
  wait_until_bound = false
  spec {
    access_modes = ["ReadWriteOnce"]
    resources {
      requests = {
        storage = "${data.coder_parameter.disk.value}Gi"
      }
    }
  }
}

resource "kubernetes_pod" "main" {
  count = data.coder_workspace.me.start_count

  metadata {
    name      = local.name
    namespace = var.namespace
    labels = {
      "app.kubernetes.io/name"     = "coder-workspace"
      "app.kubernetes.io/instance" = local.name
    }
  }

  spec {
    restart_policy = "Never"
    # The kubelet SIGTERMs cvm, then SIGKILLs the pod after this many
    # seconds: longer than cvm's own grace (CVM_SUPERVISOR_STOP_TIMEOUT), so
    # the agent and the workspace's services get their SIGTERM and time.
    termination_grace_period_seconds = var.stop_timeout + 10

    container {
      name              = "dev"
      image             = var.cvm_image
      image_pull_policy = "IfNotPresent"
      # The image's entrypoint is cvm; "run" with no command boots the
      # workspace image's own init (systemd), like a VM.
      args = ["run"]

      security_context {
        # cvm needs the outer root's capabilities for namespaces, idmapped
        # mounts and cgroups; the workspace inside has none of them.
        privileged = true
      }

      # cvm's cpus and memory default to "auto": the pod's limits become the
      # workspace's, so envbox's CODER_CPUS and CODER_MEMORY are not needed.
      resources {
        requests = {
          cpu    = "250m"
          memory = "512Mi"
        }
        limits = {
          cpu    = data.coder_parameter.cpu.value
          memory = "${data.coder_parameter.memory.value}Gi"
        }
      }

      env {
        name  = "CODER_AGENT_TOKEN"
        value = coder_agent.main.token
      }
      env {
        name  = "CODER_AGENT_URL"
        value = data.coder_workspace.me.access_url
      }
      env {
        name  = "CODER_BOOTSTRAP_SCRIPT"
        value = coder_agent.main.init_script
      }
      env {
        name  = "CODER_INNER_IMAGE"
        value = "/var/lib/cvm/images/workspace"
      }
      env {
        name  = "CODER_INNER_USERNAME"
        value = "coder"
      }
      env {
        name  = "CODER_INNER_HOSTNAME"
        value = lower(data.coder_workspace.me.name)
      }
      env {
        # Docker inside needs its data on a real filesystem, not on the
        # workspace's overlay root: a bind from the volume, like the home.
        name  = "CODER_MOUNTS"
        value = "/home/coder:/home/coder,/var/lib/cvm/docker:/var/lib/docker"
      }
      env {
        name  = "CODER_ADD_FUSE"
        value = "true"
      }
      env {
        name  = "CVM_WORKSPACE_STATE"
        value = "/var/lib/cvm/state"
      }
      env {
        name  = "CVM_WORKSPACE_ENV_PASS"
        value = "CODER_AGENT_URL"
      }
      env {
        name  = "CVM_SUPERVISOR_STOP_TIMEOUT"
        value = "${var.stop_timeout}s"
      }
      env {
        name  = "CVM_SUPERVISOR_LOG_FORMAT"
        value = "json"
      }

      # One volume, three directories: the workspace's changes to the image
      # (cvm's state dir), the home directory, and Docker's data. All must be
      # on a filesystem that can be idmapped (ext4, xfs, btrfs).
      volume_mount {
        name       = "data"
        mount_path = "/var/lib/cvm/state"
        sub_path   = "state"
      }
      volume_mount {
        name       = "data"
        mount_path = "/home/coder"
        sub_path   = "home"
      }
      volume_mount {
        name       = "data"
        mount_path = "/var/lib/cvm/docker"
        sub_path   = "docker"
      }
    }

    volume {
      name = "data"
      persistent_volume_claim {
        claim_name = kubernetes_persistent_volume_claim.data.metadata[0].name
      }
    }
  }
}
