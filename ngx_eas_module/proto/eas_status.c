
/*
 * Copyright (C) ngx_eas developers
 */


#include "eas_proto.h"


/*
 * The names MS-ASCMD 2.2.2 ("Common Status Codes") gives the status
 * values every command may answer with, 101 and above; the values
 * below 101 mean something per command and have no common name.
 * Indexed by status - 101; NULL: not assigned.
 */

static const char  *eas_status_names[] = {
    "InvalidContent",                                   /* 101 */
    "InvalidWBXML",
    "InvalidXML",
    "InvalidDateTime",
    "InvalidCombinationOfIDs",
    "InvalidIDs",
    "InvalidMIME",
    "DeviceIdMissingOrInvalid",
    "DeviceTypeMissingOrInvalid",
    "ServerError",                                      /* 110 */
    "ServerErrorRetryLater",
    "ActiveDirectoryAccessDenied",
    "MailboxQuotaExceeded",
    "MailboxServerOffline",
    "SendQuotaExceeded",
    "MessageRecipientUnresolved",
    "MessageReplyNotAllowed",
    "MessagePreviouslySent",
    "MessageHasNoRecipient",
    "MailSubmissionFailed",                             /* 120 */
    "MessageReplyFailed",
    "AttachmentIsTooLarge",
    "UserHasNoMailbox",
    "UserCannotBeAnonymous",
    "UserPrincipalCouldNotBeFound",
    "UserDisabledForSync",
    "UserOnNewMailboxCannotSync",
    "UserOnLegacyMailboxCannotSync",
    "DeviceIsBlockedForThisUser",
    "AccessDenied",                                     /* 130 */
    "AccountDisabled",
    "SyncStateNotFound",
    "SyncStateLocked",
    "SyncStateCorrupt",
    "SyncStateAlreadyExists",
    "SyncStateVersionInvalid",
    "CommandNotSupported",
    "VersionNotSupported",
    "DeviceNotFullyProvisionable",
    "RemoteWipeRequested",                              /* 140 */
    "LegacyDeviceOnStrictPolicy",
    "DeviceNotProvisioned",
    "PolicyRefresh",
    "InvalidPolicyKey",
    "ExternallyManagedDevicesNotAllowed",
    "NoRecurrenceInCalendar",
    "UnexpectedItemClass",
    "RemoteServerHasNoSSL",
    "InvalidStoredRequest",
    "ItemNotFound",                                     /* 150 */
    "TooManyFolders",
    "NoFoldersFound",
    "ItemsLostAfterMove",
    "FailureInMoveOperation",
    "MoveCommandDisallowedForNonPersistentMoveAction",
    "MoveCommandInvalidDestinationFolder",
    NULL,
    NULL,
    NULL,
    "AvailabilityTooManyRecipients",                    /* 160 */
    "AvailabilityDLLimitReached",
    "AvailabilityTransientFailure",
    "AvailabilityFailure",
    "BodyPartPreferenceTypeNotSupported",
    "DeviceInformationRequired",
    "InvalidAccountId",
    "AccountSendDisabled",
    "IRM_FeatureDisabled",
    "IRM_TransientError",
    "IRM_PermanentError",                               /* 170 */
    "IRM_InvalidTemplateID",
    "IRM_OperationNotPermitted",
    "NoPicture",
    "PictureTooLarge",
    "PictureLimitReached",
    "BodyPart_ConversationTooLarge",
    "MaximumDevicesReached"                             /* 177 */
};


const char *
eas_status_name(unsigned status)
{
    if (status < 101
        || status - 101 >= sizeof(eas_status_names)
                           / sizeof(eas_status_names[0]))
    {
        return NULL;
    }

    return eas_status_names[status - 101];
}
