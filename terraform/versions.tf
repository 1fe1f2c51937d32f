terraform {
  # 1.11: write-only arguments keep the generated ack-link signing key out of the state.
  required_version = ">= 1.11"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # 6.x: ephemeral resources, function URLs with the InvokedViaFunctionUrl grant, `region` attributes.
      version = ">= 6.0"
    }
  }
}
