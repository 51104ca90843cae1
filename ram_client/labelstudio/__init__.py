"""The Label Studio format layer: turning ram-annotate's results into Label Studio result items.

Submodules are imported by name (`from ram_client.labelstudio.regions import ...`); this
package re-exports nothing, so it shadows no other module.
"""
