"""socikit.oci"""
