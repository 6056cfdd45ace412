"""Inventory: carriers, sites, probes, targets, measurement specs, baselines and policy targets."""

from inventory.loader import InventoryError, Problem, default_inventory, load, load_many
from inventory.schema import Inventory
from inventory.topology import PathEnds, Topology

__all__ = ["Inventory", "InventoryError", "PathEnds", "Problem", "Topology", "default_inventory",
           "load", "load_many"]
