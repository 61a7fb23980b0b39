"""The benchmark behind `make bench`: Keymaster against its peer and the floor sender."""
