"""Container networking: named bridge networks with their own subnets, an IPAM made of lease
files, veth pairs configured over netlink (pyroute2), and nftables rules for masquerade and
published ports. Only the commands that touch the network import any of it."""
