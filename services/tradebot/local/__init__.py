"""Running the whole stack on one machine: embedded servers and a process supervisor."""
