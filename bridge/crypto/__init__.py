"""National (GM/T) cryptography: SM2 signatures, SM3 hashing, SM4 encryption."""
