"""ICMP/ICMPv6 echo: a pure codec (:mod:`probes.icmp.codec`) and a shared-socket trio pinger."""
