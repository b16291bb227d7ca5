"""The data half of the workflow: fetch sources, merge masks, resize and convert, manifests."""
