"""Label Studio side of the review round: a small REST client and the task/config format."""
