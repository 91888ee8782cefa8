"""What differs between EHR vendors, as data: one `VendorProfile` per vendor (profiles.py)."""
