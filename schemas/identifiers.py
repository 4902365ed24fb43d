"""Column names that look like direct patient identifiers. Such columns are never read into the
registry, the quarantine or any report: the run only names the column so the site can stop sending it."""

from __future__ import annotations

import re

_IDENTIFIER_NAME = re.compile(
    r"""^(
        (patient_|full_|first_|last_|given_|family_|middle_|sur)?name|forename|surname|initials
      | mrn|medical_record(_number|_no)?|hospital_number|nhs_number|insurance_number|ssn|social_security(_number)?
      | (home_|street_|postal_)?address|street|postcode|post_code|zip|zip_code|city
      | (tele|mobile_|cell_)?phone(_number)?|mobile|telephone|fax
      | e_?mail(_address)?
      | dob|date_of_birth|birth_?date
    )$""",
    re.VERBOSE,
)


def normalised(column: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", column.strip().lower()).strip("_")


def looks_like_identifier(column: str) -> bool:
    """True for names, record numbers, addresses, phone numbers, e-mail and full dates of birth."""
    return bool(_IDENTIFIER_NAME.match(normalised(column)))
