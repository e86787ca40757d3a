"""Container networking: named bridge networks with their own subnets, an IPAM made of lease
files, bridges and veth pairs made over netlink (``netlink``, ``rtnl``), and nftables rules for
masquerade and published ports. Only the commands that touch the network import any of it."""

PLAN = "net.json"  # a container's plan of what it holds on its network, in its state directory (``attach``)


def more_plan_file(network: str) -> str:
    """The plan of a container's place on ``network``, one of its networks besides its first
    (``attach.prepare_more``), beside ``PLAN``."""
    return f"net-{network}.json"

