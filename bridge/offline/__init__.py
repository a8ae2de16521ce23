"""Client of the national offline two-designated (线下两定) interfaces via the Guangdong gateway."""
