# SPDX-License-Identifier: Apache-2.0
# Sourced by fetch.sh and root.sh.

# The Debian archive this machine's apt uses: the source of its own release
# (not its security or updates archive); empty when apt names none.
debian_archive() {
	local codename
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	apt-get indextargets --no-release-info --format '$(REPO_URI) $(RELEASE)' \
		'Created-By: Packages' | awk -v c="$codename" '$2 == c { print $1; exit }'
}
