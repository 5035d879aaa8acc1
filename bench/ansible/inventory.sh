#!/usr/bin/env bash
# Ansible's inventory of the lab's first N hosts (bench/run.sh, bench/floor.sh).
#   bash bench/ansible/inventory.sh N LABDIR >hosts.yml
set -euo pipefail
n=$1 labdir=$2
echo "lab:"
echo "  vars:"
echo "    ansible_user: root"
echo "    ansible_ssh_private_key_file: $labdir/id_ed25519"
echo "    ansible_ssh_common_args: -o UserKnownHostsFile=$labdir/known_hosts -o StrictHostKeyChecking=yes"
echo "  hosts:"
for ((i = 1; i <= n; i++)); do
	echo "    lab$i: {ansible_host: 198.18.0.$((10 + i))}"
done
