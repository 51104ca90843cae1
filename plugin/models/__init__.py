"""What tags for the plugin: the local engine cache, the remote (ram_client) tagger and the FiftyOne zoo model."""
